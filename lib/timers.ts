/**
 * Timers for the node runtime's request path that do not use the global `setTimeout`: Deno 2.9 loads its
 * Node timers (node:timers and Node's error tables) on the first call, about 2 MiB of RSS in a bare script
 * (BENCHMARKS.md). Deadlines share one ticker on `AbortSignal.timeout` and fire up to TICK_MS late; like
 * every `AbortSignal.timeout`, the ticker does not keep a process alive (a listener does).
 *
 * @example
 * ```ts
 * const idle = new Deadline(() => stream.close());
 * idle.set(60_000); // again on every request; idle.clear() when done
 * ```
 * @module
 */

/** How often pending deadlines are checked. */
export const TICK_MS = 100;

const pending = new Set<Deadline>();
let ticking = false;

function schedule(ms: number): void {
  ticking = true;
  AbortSignal.timeout(ms).addEventListener("abort", tick, { once: true });
}

function tick(): void {
  const now = Date.now();
  for (const deadline of pending) deadline.check(now);
  if (pending.size) schedule(TICK_MS);
  else ticking = false;
}

/** Calls `onExpiry` once the time given to `set` has passed, unless set again or cleared before. */
export class Deadline {
  #at = 0;

  constructor(readonly onExpiry: () => void) {}

  /** Expires `ms` from now (replacing any earlier deadline). */
  set(ms: number): void {
    this.#at = Date.now() + ms;
    pending.add(this);
    if (!ticking) schedule(Math.min(ms, TICK_MS));
  }

  /** Never expires unless set again. */
  clear(): void {
    pending.delete(this);
  }

  /** Fires if due at `now` (the ticker's call). */
  check(now: number): void {
    if (this.#at > now) return;
    pending.delete(this);
    this.onExpiry();
  }
}

/** Calls `fn` after about `ms` milliseconds (not cancellable). */
export function after(ms: number, fn: () => void): void {
  AbortSignal.timeout(ms).addEventListener("abort", fn, { once: true });
}
