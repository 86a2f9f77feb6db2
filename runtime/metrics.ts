/**
 * `GET /metrics` on the node runtime (Prometheus text format, runtime/metrics_registry.ts), behind the
 * same authentication as the API (verb get on `nodes/bpfd`), and the accounting of every function call.
 * `bpfStats` in the configuration turns the kernel's run statistics on (BPF_ENABLE_STATS) for as long as
 * the runtime runs; `metrics: false` turns the metrics off.
 *
 * @example
 * ```ts
 * const app = new Hono();
 * instrument(app, node); // GET /metrics, and every /v1/functions/* call counted
 * ```
 * @module
 */
import type { Hono } from "hono";
import { enableRunStats } from "../ffi/introspect.ts";
import { FUNCTIONS } from "../functions/mod.ts";
import type { Node } from "./ctx.ts";
import type { NodeMetrics } from "./metrics_registry.ts";

/** Functions whose failures are counted by errno (the kernel refused them). */
const KERNEL_FUNCTIONS = new Set(["load", "attach", "modify", "reconcile"]);

const perNode = new WeakMap<Node, Promise<NodeMetrics>>();

/** Adds `/metrics` and call accounting to the node's app; turns bpf_stats on when configured. */
export function instrument(app: Hono, node: Node): void {
  if (node.config.bpfStats) {
    try {
      enableRunStats();
    } catch (err) {
      node.log.warn("bpf_stats not enabled: run counts and times stay empty", {
        error: (err as Error).message,
      });
    }
  }
  if (node.config.metrics === false) return;
  // The registry is imported on the first call or scrape: a runtime nobody calls never holds it.
  const ready = () => {
    let loading = perNode.get(node);
    if (!loading) {
      loading = import("./metrics_registry.ts").then((m) => m.nodeMetrics(node));
      perNode.set(node, loading);
    }
    return loading;
  };
  app.use("/v1/functions/:name", async (c, next) => {
    const started = performance.now();
    await next();
    const metrics = await ready();
    const fn = c.req.param("name") ?? "";
    if (!FUNCTIONS.has(fn)) return; // label values stay the known names
    metrics.calls.inc({ function: fn, status: String(c.res.status) });
    metrics.latency.observe({ function: fn }, (performance.now() - started) / 1000);
    if (c.res.status >= 400 && KERNEL_FUNCTIONS.has(fn)) {
      const errno = await c.res.clone().json().then((b) => b?.error?.errno).catch(() => undefined);
      if (typeof errno === "string") metrics.failures.inc({ function: fn, errno });
    }
  });
  app.get("/metrics", async (c) => {
    const metrics = await ready();
    return c.body(metrics.render(), 200, { "content-type": metrics.contentType });
  });
}
