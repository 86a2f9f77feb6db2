/**
 * The node runtime's HTTP API (hono): `POST /v1/functions/<name>` with JSON in and out, `GET
 * /v1/functions` to list them, `GET /healthz` and `GET /readyz`. Errors answer with their status and a
 * body that names the field or carries the errno and verifier log.
 *
 * @example
 * ```ts
 * const app = createApp(node, () => ({ user: "test", via: "in-process" }));
 * const res = await app.request("/v1/functions/list", { method: "POST", body: "{}" });
 * ```
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { allFunctions, BpfdError, FUNCTIONS, invoke } from "../functions/mod.ts";
import type { Identity } from "../model/schemas.ts";
import type { Node } from "./ctx.ts";
import { streamedAnswer } from "./stream.ts";
import { instrument } from "./metrics.ts";

/** Establishes who is calling (the listener decides how). */
export type Identify = (c: Context) => Identity | Promise<Identity>;

/** The API app for one node. */
export function createApp(node: Node, identify: Identify): Hono {
  const app = new Hono();
  instrument(app, node);

  app.get("/healthz", (c) => c.json({ ok: true }));
  app.get("/readyz", (c) => {
    const problem = node.readiness();
    return c.json(
      { ready: !problem, ...(problem ? { problem } : {}), findings: node.findings },
      problem ? 503 : 200,
    );
  });
  app.get(
    "/v1/functions",
    async (c) =>
      c.json({ functions: (await allFunctions()).map(({ name, summary }) => ({ name, summary })) }),
  );

  app.post("/v1/functions/:name", async (c) => {
    const name = c.req.param("name");
    const fn = await FUNCTIONS.get(name)?.();
    if (!fn) {
      return c.json(
        new BpfdError(
          404,
          "not_found",
          `no function ${name} (functions: ${[...FUNCTIONS.keys()].join(", ")})`,
        ).toBody(),
        404,
      );
    }
    let body: unknown;
    try {
      const text = await c.req.text();
      body = text.trim() ? JSON.parse(text) : {};
    } catch (err) {
      return c.json(
        new BpfdError(400, "invalid_json", `the body is not JSON: ${(err as Error).message}`).toBody(),
        400,
      );
    }
    const caller = await identify(c);
    const started = performance.now();
    try {
      const result = await invoke(fn, body, node.ctxFor(caller));
      node.log.info("call", { function: name, caller, ms: +(performance.now() - started).toFixed(2) });
      // A trace session answers with its stream of events (runtime/stream.ts).
      return streamedAnswer(result) ?? c.json(result as Record<string, unknown>);
    } catch (err) {
      const error = err instanceof BpfdError
        ? err
        : new BpfdError(500, "internal", (err as Error)?.message ?? String(err));
      node.log[error.status >= 500 ? "error" : "info"]("call failed", {
        function: name,
        caller,
        status: error.status,
        error: error.message,
        ...(error.status >= 500 ? { stack: (err as Error)?.stack } : {}),
      });
      return c.json(error.toBody(), error.status);
    }
  });
  return app;
}
