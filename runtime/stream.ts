/**
 * Answers that are streams: a function whose result carries `events` (a trace session) is answered as
 * newline-delimited JSON (`application/x-ndjson`, chunked), first the session, then one event per line
 * as it comes; errors before that are answered by runtime/app.ts like any function's. A caller that goes
 * away ends the session: the server cancels the body (not the request's signal: Deno 2.9 aborts it on every
 * finished answer).
 *
 * @example
 * ```ts
 * const streamed = streamedAnswer(result);
 * if (streamed) return streamed;
 * ```
 * @module
 */
import { TRACE_CONTENT_TYPE, type TraceEvent, type TraceSessionInfo } from "../model/trace.ts";

/** A trace function's result: the session and its events. */
interface Streamed {
  session: TraceSessionInfo;
  events: ReadableStream<TraceEvent>;
}

function isStreamed(result: unknown): result is Streamed {
  return typeof result === "object" && result !== null && "events" in result &&
    result.events instanceof ReadableStream && "session" in result;
}

/** The streamed answer for `result`, or undefined when it is an ordinary (JSON) result. */
export function streamedAnswer(result: unknown): Response | undefined {
  if (!isStreamed(result)) return undefined;
  const { script: _script, cgroups: _cgroups, startTime: _startTime, ...shown } = result.session;
  const reader = result.events.getReader();
  const encoder = new TextEncoder();
  const line = (event: TraceEvent) => encoder.encode(JSON.stringify(event) + "\n");
  const body = new ReadableStream<Uint8Array>({
    start: (controller) => controller.enqueue(line({ session: shown })),
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(line(value));
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return new Response(body, { headers: { "content-type": TRACE_CONTENT_TYPE, "cache-control": "no-store" } });
}
