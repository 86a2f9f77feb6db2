/**
 * `trace`: runs a bpftrace program on this node for a bounded time and streams its output (stdout and
 * stderr lines, ending with the maps bpftrace prints when it is interrupted). With `containerId`, the
 * files of uprobes are taken from that container's root. A script bpftrace refuses is a 400 with its
 * message; too many sessions a 429. The runtime serves the stream as NDJSON (runtime/stream.ts).
 *
 * @example
 * ```sh
 * bpfd trace -e 'tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }' --duration 10s
 * ```
 * @module
 */
import { NonEmpty, PositiveInt, z } from "../model/zod.ts";
import { TraceError } from "../kernel/bpftrace.ts";
import { TraceSessionInfo } from "../model/trace.ts";
import type { TraceEvent } from "../model/trace.ts";
import { defineFunction } from "./_define.ts";
import { BpfdError, invalid } from "./_errors.ts";
import { inContainerRoot } from "./_trace_script.ts";
import type { Ctx } from "./_ctx.ts";

const TraceInput = z.strictObject({
  /** The bpftrace program text. */
  script: NonEmpty,
  /** How long the session runs at most, in seconds (default and maximum: the node's `trace` bounds). */
  seconds: z.optional(PositiveInt),
  /** A container on this node (`containerd://<id>`): uprobe files are looked up in its root. */
  containerId: z.optional(NonEmpty),
});
type TraceInput = z.output<typeof TraceInput>;

const TraceOutput = z.object({
  session: TraceSessionInfo,
  events: z.custom<ReadableStream<TraceEvent>>((v) => v instanceof ReadableStream),
});
type TraceOutput = z.output<typeof TraceOutput>;

export const trace = defineFunction({
  name: "trace",
  summary: "Run a bpftrace program for a bounded time and stream its output (NDJSON).",
  input: TraceInput,
  output: TraceOutput,
  handler: startTrace,
});

async function startTrace(input: TraceInput, ctx: Ctx): Promise<TraceOutput> {
  const traces = ctx.traces;
  if (!traces) throw new BpfdError(503, "unavailable", "this runtime does not run trace sessions");
  const { bounds } = traces;
  const bytes = new TextEncoder().encode(input.script).length;
  if (bytes > bounds.maxScriptBytes) {
    throw invalid("script", `${bytes} bytes; at most ${bounds.maxScriptBytes} are accepted`);
  }
  const seconds = input.seconds ?? Math.min(bounds.defaultSeconds, bounds.maxSeconds);
  if (seconds > bounds.maxSeconds) {
    throw invalid("seconds", `${seconds} s is over this node's maximum of ${bounds.maxSeconds} s`);
  }
  let script = input.script;
  if (input.containerId) {
    const root = await traces.containerRoot(input.containerId);
    if (!root) throw invalid("containerId", `no process of container ${input.containerId} on this node`);
    script = inContainerRoot(script, root);
  }
  try {
    const started = await traces.start({ script, given: input.script, seconds, caller: ctx.caller });
    ctx.log.info("trace session started", {
      session: started.session.id,
      user: ctx.caller.user,
      via: ctx.caller.via,
      expiresAt: started.session.expiresAt,
      script: input.script,
      ...(input.containerId ? { containerId: input.containerId } : {}),
    });
    return started;
  } catch (err) {
    if (!(err instanceof TraceError)) throw err;
    ctx.log.info("trace session refused", { user: ctx.caller.user, script: input.script, reason: err.code });
    if (err.code === "too_many") throw new BpfdError(429, "too_many_sessions", err.message);
    throw new BpfdError(400, "script_refused", err.message, { field: "script" });
  }
}
