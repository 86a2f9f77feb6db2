/**
 * The node runtime's Prometheus metrics (runtime/prometheus.ts): programs by type and managed or not,
 * each program's run count and run time (while the kernel's `bpf_stats` is on), map count and memory,
 * function calls by name and status with latency histograms, kernel failures by errno. Imported by
 * runtime/metrics.ts only when metrics are on.
 *
 * @example
 * ```ts
 * const metrics = nodeMetrics(node);
 * metrics.calls.inc({ function: "load", status: "200" });
 * console.log(metrics.render());
 * ```
 * @module
 */
import { mapMemlock, runStatsHeld } from "../ffi/introspect.ts";
import { mapIds } from "../ffi/libbpf.ts";
import type { Node } from "./ctx.ts";
import { CONTENT_TYPE, CounterMap, family, HistogramMap, type Sample } from "./prometheus.ts";

/** Whether the kernel collects run counts and times now: this runtime holds them on, or the sysctl. */
export function runStatsEnabled(): boolean {
  if (runStatsHeld()) return true;
  try {
    return Deno.readTextFileSync("/proc/sys/kernel/bpf_stats_enabled").trim() === "1";
  } catch {
    return false; /* no such sysctl: the kernel does not collect them */
  }
}

/** The metrics the HTTP edge updates, and the scrape. */
export interface NodeMetrics {
  calls: CounterMap;
  latency: HistogramMap;
  failures: CounterMap;
  contentType: string;
  /** The whole exposition, the kernel's figures read now. */
  render(): string;
}

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The metrics of one node. */
export function nodeMetrics(node: Node): NodeMetrics {
  const calls = new CounterMap();
  const latency = new HistogramMap(BUCKETS);
  const failures = new CounterMap();
  const render = () => {
    const programs = node.kernel.allPrograms();
    const managed = (id: number) => node.state.program(id) ? "true" : "false";
    const byType = new CounterMap();
    for (const p of programs) byType.inc({ type: p.type, managed: managed(p.id) });
    const stats = runStatsEnabled();
    const runs: Sample[] = [], seconds: Sample[] = [];
    if (stats) {
      for (const p of programs) {
        const labels = { id: String(p.id), name: p.name, type: p.type, managed: managed(p.id) };
        runs.push({ labels, value: p.runCount });
        seconds.push({ labels, value: p.runTimeNs / 1e9 });
      }
    }
    const maps = mapIds();
    let memory = 0;
    for (const id of maps) memory += mapMemlock(id) ?? 0;
    return [
      family(
        "bpfd_programs",
        "gauge",
        "BPF programs in the node's kernel, by kernel type and whether bpfd manages them.",
        byType.samples(),
      ),
      family(
        "bpfd_bpf_stats_enabled",
        "gauge",
        "1 while the kernel collects run counts and run times (bpf_stats); 0: the run metrics stay empty.",
        [{ labels: {}, value: stats ? 1 : 0 }],
      ),
      family("bpfd_program_runs_total", "counter", "Times each program ran (kernel bpf_stats).", runs),
      family(
        "bpfd_program_run_seconds_total",
        "counter",
        "Time each program ran (kernel bpf_stats).",
        seconds,
      ),
      family("bpfd_maps", "gauge", "BPF maps in the node's kernel.", [{ labels: {}, value: maps.length }]),
      family(
        "bpfd_map_memory_bytes",
        "gauge",
        "Memory charged to all BPF maps in the node's kernel (memlock).",
        [{ labels: {}, value: memory }],
      ),
      family(
        "bpfd_function_calls_total",
        "counter",
        "Function calls by name and HTTP status.",
        calls.samples(),
      ),
      family(
        "bpfd_function_duration_seconds",
        "histogram",
        "Function call latency by name.",
        latency.samples(),
      ),
      family(
        "bpfd_kernel_failures_total",
        "counter",
        "Load, attach, modify and reconcile calls the kernel refused, by function and errno.",
        failures.samples(),
      ),
    ].join("\n");
  };
  return { calls, latency, failures, contentType: CONTENT_TYPE, render };
}
