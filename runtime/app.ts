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
import { Hono } from "hono/tiny";
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
      const problem = jsonShapeProblem(text);
      if (problem) throw new Error(problem);
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
      return c.json(boundedError(error.toBody()), error.status);
    }
  });
  return app;
}

/**
 * Bounds on a request's JSON beyond its size: no function takes anything near them, and validating a
 * body of hundreds of thousands of values (or parsing one nested 100,000 deep) costs the runtime hundreds
 * of MiB (BENCHMARKS.md, "Bad input over the socket").
 */
const MAX_JSON_DEPTH = 64, MAX_JSON_VALUES = 2048;

/**
 * Why JSON `text` is refused before it is parsed, or undefined: arrays and objects nested more than
 * MAX_JSON_DEPTH deep, or more than MAX_JSON_VALUES values (counted by their separators; strings skipped).
 */
export function jsonShapeProblem(text: string): string | undefined {
  let depth = 0, values = 1, inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // a backslash escapes the next character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > MAX_JSON_DEPTH) return `nested deeper than ${MAX_JSON_DEPTH} levels`;
      values++;
    } else if (c === 93 || c === 125) depth--;
    else if (c === 44 && ++values > MAX_JSON_VALUES) return `more than ${MAX_JSON_VALUES} values`;
  }
  return undefined;
}

/**
 * An error body no larger than a few hundred KiB, whatever the request was: the message up to 4 KiB, other
 * texts (verifier logs) up to 64 KiB, lists (validation issues) up to 100 entries, each cut with a marker.
 */
export function boundedError(body: ReturnType<BpfdError["toBody"]>): ReturnType<BpfdError["toBody"]> {
  const cut = (value: unknown, max: number): unknown => {
    if (typeof value === "string") {
      return value.length > max ? `${value.slice(0, max)}… [${value.length - max} more characters]` : value;
    }
    if (Array.isArray(value)) {
      const kept = value.slice(0, 100).map((v) => cut(v, 1024));
      return value.length > 100 ? [...kept, `… [${value.length - 100} more]`] : kept;
    }
    if (value && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, cut(v, max)]));
    }
    return value;
  };
  const { code, message, ...rest } = body.error;
  return { error: { code, message: cut(message, 4096) as string, ...(cut(rest, 64 << 10) as typeof rest) } };
}
