/**
 * The streaming answer of `trace`: `POST /v1/functions/trace` answers errors as JSON like every function,
 * and a started session as newline-delimited JSON (`application/x-ndjson`, chunked), one event per line
 * as bpftrace prints. A caller that goes away (the request is aborted, the body cancelled) ends the
 * session.
 *
 * @example
 * ```ts
 * app.route("/", streamRoutes(node, identify));
 * ```
 * @module
 */
import { Hono } from "hono";
import { BpfdError, invoke } from "../functions/mod.ts";
import { trace } from "../functions/trace.ts";
import { TRACE_CONTENT_TYPE, type TraceEvent } from "../model/trace.ts";
import type { Identify } from "./app.ts";
import type { Node } from "./ctx.ts";

/** The routes whose answers are streams. */
export function streamRoutes(node: Node, identify: Identify): Hono {
  const app = new Hono();
  app.post("/v1/functions/trace", async (c) => {
    let body: unknown;
    try {
      const text = await c.req.text();
      body = text.trim() ? JSON.parse(text) : {};
    } catch (err) {
      const error = new BpfdError(400, "invalid_json", `the body is not JSON: ${(err as Error).message}`);
      return c.json(error.toBody(), 400);
    }
    const caller = await identify(c);
    let started;
    try {
      started = await invoke(trace, body, node.ctxFor(caller));
    } catch (err) {
      const error = err instanceof BpfdError
        ? err
        : new BpfdError(500, "internal", (err as Error)?.message ?? String(err));
      node.log[error.status >= 500 ? "error" : "info"]("call failed", {
        function: "trace",
        caller,
        status: error.status,
        error: error.message,
      });
      return c.json(error.toBody(), error.status);
    }
    const { script: _script, cgroups: _cgroups, startTime: _startTime, ...shown } = started.session;
    const reader = started.events.getReader();
    const encoder = new TextEncoder();
    const line = (event: TraceEvent) => encoder.encode(JSON.stringify(event) + "\n");
    const out = new ReadableStream<Uint8Array>({
      start: (controller) => controller.enqueue(line({ session: shown })),
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(line(value));
      },
      cancel: (reason) => reader.cancel(reason),
    });
    // A caller that goes away: the body is cancelled, and the request's signal aborts.
    c.req.raw.signal?.addEventListener("abort", () => reader.cancel().catch(() => {/* ended already */}));
    return new Response(out, {
      headers: { "content-type": TRACE_CONTENT_TYPE, "cache-control": "no-store" },
    });
  });
  return app;
}
