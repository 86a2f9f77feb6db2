/**
 * Helpers for trace session tests: start a session through the HTTP app (or any fetch), read its NDJSON
 * stream event by event, and check that a session left no process, program, cgroup or record.
 */
import assert from "node:assert/strict";
import { processStartTime } from "../../../kernel/bpftrace.ts";
import { programIds } from "../../../ffi/libbpf.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** A session's stream, read one event at a time. */
export class SessionStream {
  #reader: ReadableStreamDefaultReader<string>;
  #rest = "";
  #lines: string[] = [];
  /** Every event read so far. */
  readonly events: Json[] = [];

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next event, or undefined at the end. */
  async next(): Promise<Json | undefined> {
    while (!this.#lines.length) {
      const { done, value } = await this.#reader.read();
      if (done) return undefined;
      const parts = (this.#rest + value).split("\n");
      this.#rest = parts.pop()!;
      this.#lines.push(...parts.filter(Boolean));
    }
    const event = JSON.parse(this.#lines.shift()!);
    this.events.push(event);
    return event;
  }

  /** Reads until an event satisfies `pred` (and returns it), or the end. */
  async until(pred: (e: Json) => boolean): Promise<Json | undefined> {
    for (let e = await this.next(); e; e = await this.next()) if (pred(e)) return e;
    return undefined;
  }

  /** Reads to the end; returns the `end` event. */
  async rest(): Promise<Json> {
    await this.until(() => false);
    return this.events.at(-1)?.end;
  }

  /** The `line` texts read so far. */
  lines(): string[] {
    return this.events.filter((e) => "line" in e).map((e) => e.line);
  }

  /** Goes away, as a caller that disconnects. */
  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

/** Starts a session: the response's status, and its stream when it is 200 (else the error body). */
export async function startSession(
  fetcher: (path: string, init: RequestInit) => Response | Promise<Response>,
  input: Json,
): Promise<{ status: number; stream?: SessionStream; body?: Json }> {
  const res = await fetcher("/v1/functions/trace", { method: "POST", body: JSON.stringify(input) });
  if (res.status !== 200) return { status: res.status, body: await res.json() };
  assert.equal(res.headers.get("content-type"), "application/x-ndjson");
  return { status: 200, stream: new SessionStream(res.body!) };
}

/** Waits up to `ms` for `pred` to hold. */
export async function eventually(pred: () => boolean, ms = 5000): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline;) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return pred();
}

/** Asserts that process `pid` has gone and none of `programs` is still in the kernel. */
export async function assertGone(pid: number, programs: number[]): Promise<void> {
  assert.ok(await eventually(() => processStartTime(pid) === undefined), `bpftrace ${pid} still runs`);
  assert.ok(
    await eventually(() => {
      const alive = new Set(programIds());
      return programs.every((id) => !alive.has(id));
    }),
    `programs ${programs.join(", ")} still loaded`,
  );
}

/** A path no one else opens. */
export function uniquePath(): string {
  return `/tmp/bpfd-trace-${crypto.randomUUID()}`;
}
