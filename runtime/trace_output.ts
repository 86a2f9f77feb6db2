/**
 * The output caps of a trace session: bytes per second and in total, plus a reserve for the final map
 * printout after SIGINT. Dropped output is announced once per stretch with a visible "output truncated"
 * line, so a reader knows something is missing.
 *
 * @example
 * ```ts
 * const budget = new OutputBudget({ bytesPerSecond: 65536, totalBytes: 4 << 20, finalBytes: 1 << 20 });
 * budget.take(120, Date.now()); // "pass"
 * ```
 * @module
 */

/** The caps. */
export interface OutputCaps {
  bytesPerSecond: number;
  totalBytes: number;
  /** Allowed after {@link OutputBudget.final} on top of what is left of `totalBytes`. */
  finalBytes: number;
}

/** pass: send it; notice: drop it and send the truncation notice; drop: drop it silently. */
export type Verdict = "pass" | "notice" | "drop";

/** Meters one session's output. */
export class OutputBudget {
  #windowStart = -Infinity;
  #inWindow = 0;
  #sent = 0;
  #limit: number;
  #dropping = false;
  /** Bytes dropped so far. */
  dropped = 0;

  constructor(public caps: OutputCaps) {
    this.#limit = caps.totalBytes;
  }

  /** Whether `bytes` more may be sent at time `now` (ms). */
  take(bytes: number, now: number): Verdict {
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    const fits = this.#inWindow + bytes <= this.caps.bytesPerSecond && this.#sent + bytes <= this.#limit;
    if (fits) {
      this.#inWindow += bytes;
      this.#sent += bytes;
      this.#dropping = false;
      return "pass";
    }
    this.dropped += bytes;
    if (this.#dropping) return "drop";
    this.#dropping = true;
    return "notice";
  }

  /** The session is ending: its final printout may use `finalBytes` more, at any rate. */
  final(): void {
    this.#limit = this.#sent + this.caps.finalBytes;
    this.caps = { ...this.caps, bytesPerSecond: Infinity };
    this.#dropping = false;
  }
}
