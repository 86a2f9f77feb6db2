/**
 * The node runtime's Prometheus metrics in a prom-client registry: programs by type and managed or not,
 * each program's run count and run time (while the kernel's `bpf_stats` is on), map count and memory,
 * function calls by name and status with latency histograms, kernel failures by errno. Imported by
 * runtime/metrics.ts only when metrics are on.
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { mapIdsAll, mapMemlock, runStatsHeld } from "../ffi/introspect.ts";
import type { Node } from "./ctx.ts";

/** Whether the kernel collects run counts and times now: this runtime holds them on, or the sysctl. */
export function runStatsEnabled(): boolean {
  if (runStatsHeld()) return true;
  try {
    return Deno.readTextFileSync("/proc/sys/kernel/bpf_stats_enabled").trim() === "1";
  } catch {
    return false; /* no such sysctl: the kernel does not collect them */
  }
}

/** The registry and the metrics the HTTP edge updates. */
export interface NodeMetrics {
  registry: Registry;
  calls: Counter;
  latency: Histogram;
  failures: Counter;
}

/** The metrics of one node, in their own registry. */
export function nodeMetrics(
  node: Node,
): { registry: Registry; calls: Counter; latency: Histogram; failures: Counter } {
  const registry = new Registry();
  const registers = [registry];
  new Gauge({
    name: "bpfd_programs",
    help: "BPF programs in the node's kernel, by kernel type and whether bpfd manages them.",
    labelNames: ["type", "managed"],
    registers,
    collect() {
      this.reset();
      for (const p of node.kernel.allPrograms()) {
        this.inc({ type: p.type, managed: node.state.program(p.id) ? "true" : "false" });
      }
    },
  });
  new Gauge({
    name: "bpfd_bpf_stats_enabled",
    help: "1 while the kernel collects run counts and run times (bpf_stats); 0: the run metrics stay empty.",
    registers,
    collect() {
      this.set(runStatsEnabled() ? 1 : 0);
    },
  });
  const perProgram = (
    name: string,
    help: string,
    value: (p: { runCount: number; runTimeNs: number }) => number,
  ) =>
    new Counter({
      name,
      help,
      labelNames: ["id", "name", "type", "managed"],
      registers,
      collect() {
        this.reset();
        if (!runStatsEnabled()) return;
        for (const p of node.kernel.allPrograms()) {
          const labels = {
            id: String(p.id),
            name: p.name,
            type: p.type,
            managed: node.state.program(p.id) ? "true" : "false",
          };
          this.inc(labels, value(p));
        }
      },
    });
  perProgram("bpfd_program_runs_total", "Times each program ran (kernel bpf_stats).", (p) => p.runCount);
  perProgram(
    "bpfd_program_run_seconds_total",
    "Time each program ran (kernel bpf_stats).",
    (p) => p.runTimeNs / 1e9,
  );
  new Gauge({
    name: "bpfd_maps",
    help: "BPF maps in the node's kernel.",
    registers,
    collect() {
      this.set(mapIdsAll().length);
    },
  });
  new Gauge({
    name: "bpfd_map_memory_bytes",
    help: "Memory charged to all BPF maps in the node's kernel (memlock).",
    registers,
    collect() {
      let total = 0;
      for (const id of mapIdsAll()) total += mapMemlock(id) ?? 0;
      this.set(total);
    },
  });
  const calls = new Counter({
    name: "bpfd_function_calls_total",
    help: "Function calls by name and HTTP status.",
    labelNames: ["function", "status"],
    registers,
  });
  const latency = new Histogram({
    name: "bpfd_function_duration_seconds",
    help: "Function call latency by name.",
    labelNames: ["function"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const failures = new Counter({
    name: "bpfd_kernel_failures_total",
    help: "Load, attach, modify and reconcile calls the kernel refused, by function and errno.",
    labelNames: ["function", "errno"],
    registers,
  });
  return { registry, calls, latency, failures };
}
