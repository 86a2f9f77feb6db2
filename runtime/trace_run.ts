/**
 * One running trace session's output: bpftrace's stdout and stderr read line by line, metered by the
 * session's {@link OutputBudget}, held until the caller's stream exists, then queued to it (a reader
 * too slow to keep up loses lines, with a notice). Also tells when bpftrace has started or refused.
 *
 * @example
 * ```ts
 * const run = new TraceRun(child, budget);
 * const outcome = await run.startup(30_000);
 * ```
 * @module
 */
import type { BpftraceChild } from "../kernel/bpftrace.ts";
import { type TraceEvent, TRUNCATED } from "../model/trace.ts";
import type { OutputBudget } from "./trace_output.ts";

/** bpftrace's notice that it could not raise RLIMIT_MEMLOCK (harmless on kernels that account memcg). */
const NOISE = /couldn't set RLIMIT_MEMLOCK/;
/** The line bpftrace prints before it attaches. */
const ATTACHING = /^Attaching \d+ probes?\.\.\.$/;
/** The longest line passed on; longer ones are cut. */
const MAX_LINE = 16 << 10;
/** How long bpftrace has after "Attaching N probes..." to fail attaching before it counts as started. */
const ATTACH_WINDOW_MS = 500;

/** How the start went: bpftrace runs (or ended by itself after starting), or refused the script. */
export type Startup = { running: true } | { running: false; exitCode: number; message: string };

/** The output side of one session. */
export class TraceRun {
  #held: TraceEvent[] = [];
  #controller?: ReadableStreamDefaultController<TraceEvent>;
  #gone = false;
  #stderr: string[] = [];
  #progress?: () => void;
  #attachingSeen = false;
  #output = false;
  #lagging = false;
  #status?: Deno.CommandStatus;
  /** Resolves when both pipes are drained and the process has exited. */
  readonly done: Promise<Deno.CommandStatus>;

  constructor(readonly child: BpftraceChild, readonly budget: OutputBudget) {
    const pumps = [this.#pump(child.process.stdout, false), this.#pump(child.process.stderr, true)];
    this.done = Promise.all(pumps).then(() => child.process.status).then((status) => this.#status = status);
  }

  /** Waits until bpftrace runs its probes, or exits; a non-zero exit before any output is a refusal. */
  async startup(timeoutMs: number): Promise<Startup> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const progressed = new Promise<void>((resolve) => {
      const check = () => {
        if (this.#output) resolve();
        else if (this.#attachingSeen) timer ??= setTimeout(resolve, ATTACH_WINDOW_MS);
      };
      this.#progress = check;
      check();
    });
    let limitTimer: ReturnType<typeof setTimeout> | undefined;
    const limit = new Promise<void>((resolve) => limitTimer = setTimeout(resolve, timeoutMs));
    const exited = this.done.then(() => {});
    try {
      await Promise.race([progressed, exited, limit]);
    } finally {
      clearTimeout(timer);
      clearTimeout(limitTimer);
      this.#progress = undefined;
    }
    const status = this.#status;
    if (status && status.code !== 0 && !this.#output) {
      return { running: false, exitCode: status.code, message: this.#stderr.join("\n").trim() };
    }
    return { running: true };
  }

  /** The caller's stream: what was held so far, then every event as it comes; cancelling calls `onCancel`. */
  stream(onCancel: () => void): ReadableStream<TraceEvent> {
    return new ReadableStream<TraceEvent>({
      start: (controller) => {
        this.#controller = controller;
        for (const event of this.#held.splice(0)) controller.enqueue(event);
      },
      cancel: () => {
        this.#gone = true;
        this.#controller = undefined;
        onCancel();
      },
    }, { highWaterMark: 1024 });
  }

  /** Sends the last event and closes the stream. */
  finish(event: TraceEvent): void {
    this.#send(event);
    try {
      this.#controller?.close();
    } catch { /* cancelled meanwhile */ }
    this.#gone = true;
  }

  #send(event: TraceEvent): void {
    if (this.#gone) return;
    const c = this.#controller;
    if (!c) {
      this.#held.push(event);
      return;
    }
    if ((c.desiredSize ?? 0) > 0 || "end" in event) {
      c.enqueue(event);
      this.#lagging = false;
    } else if (!this.#lagging) {
      this.#lagging = true;
      c.enqueue({ line: TRUNCATED });
    }
  }

  #line(text: string, stderr: boolean): void {
    if (stderr && NOISE.test(text)) return;
    if (stderr && !this.#output) this.#stderr.push(text);
    if (!stderr) {
      if (ATTACHING.test(text)) this.#attachingSeen = true;
      else this.#output = true;
      this.#progress?.();
    }
    const line = text.length > MAX_LINE ? `${text.slice(0, MAX_LINE)}… [line cut]` : text;
    const verdict = this.budget.take(line.length + 1, Date.now());
    if (verdict === "notice") this.#send({ line: TRUNCATED });
    if (verdict === "pass") this.#send(stderr ? { line, stderr: true } : { line });
  }

  async #pump(pipe: ReadableStream<Uint8Array>, stderr: boolean): Promise<void> {
    let rest = "";
    for await (const chunk of pipe.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      // A line that never ends is cut and passed on in pieces rather than held without bound.
      while (rest.length > MAX_LINE) {
        parts.push(rest.slice(0, MAX_LINE));
        rest = rest.slice(MAX_LINE);
      }
      for (const part of parts) this.#line(part, stderr);
    }
    if (rest) this.#line(rest, stderr);
  }
}
