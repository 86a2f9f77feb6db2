/**
 * The controller's Prometheus metrics (prom-client): reconcile duration (histogram, by result), the work
 * queue's depth, and per BpfProgramConfig the nodes selected, Loaded and failing (from the configs'
 * status in the controller's cache). Served by controller/web.ts at `/metrics`.
 *
 * @example
 * ```ts
 * const metrics = controllerMetrics(controller);
 * console.log(await metrics.metrics());
 * ```
 * @module
 */
import { Gauge, Histogram, Registry } from "prom-client";
import type { Controller } from "./controller.ts";

/** A registry with the controller's metrics; reconcile durations are recorded from now on. */
export function controllerMetrics(c: Controller): Registry {
  const registry = new Registry();
  const registers = [registry];
  const duration = new Histogram({
    name: "bpfd_controller_reconcile_duration_seconds",
    help: "Time one reconcile of a BpfProgram took, by result.",
    labelNames: ["result"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  c.onReconciled = (ms, failed) => duration.observe({ result: failed ? "error" : "ok" }, ms / 1000);
  new Gauge({
    name: "bpfd_controller_queue_depth",
    help: "Keys waiting in the controller's work queue.",
    registers,
    collect() {
      this.set(c.queue.length);
    },
  });
  new Gauge({
    name: "bpfd_config_nodes",
    help: "Nodes of each BpfProgramConfig by state: selected, loaded, failing (its status).",
    labelNames: ["config", "state"],
    registers,
    collect() {
      this.reset();
      for (const cfg of c.store.configs()) {
        const nodes = cfg.status?.nodes;
        if (!nodes) continue;
        const config = cfg.metadata?.name ?? "";
        this.set({ config, state: "selected" }, nodes.selected ?? 0);
        this.set({ config, state: "loaded" }, nodes.loaded ?? 0);
        this.set({ config, state: "failing" }, nodes.failing ?? 0);
      }
    },
  });
  return registry;
}
