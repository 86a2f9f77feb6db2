/**
 * The larger bad-input run: 10,000 mutated requests (tests/host/security/_fuzz.ts) to a runtime process
 * over its unix socket, with the statuses, latencies, failures, what was left behind and the runtime's
 * memory afterwards.
 *
 * @module
 */
import { VethPair } from "../_netns.ts";
import { bytecodePath, kernelSnapshot, leftovers, RuntimeProcess } from "../_runtime.ts";
import { fuzzRun, processTarget } from "../host/security/_fuzz_run.ts";
import { type BenchSection, percentiles } from "./node.ts";

/** Runs `count` requests from `seed` and reports them as a BENCHMARKS.md section. */
export async function benchFuzz(count = 10_000, seed = 2026): Promise<BenchSection> {
  const before = kernelSnapshot();
  await using net = await VethPair.create();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-bench-fuzz-" });
  const rt = await RuntimeProcess.start(dir);
  const started = performance.now();
  let result, alive, peak, rss;
  try {
    result = await fuzzRun(processTarget(rt), net, { seed, count, objectPath: bytecodePath("xdp_counter") });
    alive = (await rt.fetch("/healthz")).status === 200;
    const status = await Deno.readTextFile(`/proc/${rt.child.pid}/status`);
    [peak, rss] = ["VmHWM", "VmRSS"].map((f) =>
      Number(status.match(new RegExp(`${f}:\\s+(\\d+)`))![1]) / 1024
    );
  } finally {
    await rt.stop();
    await new Deno.Command("umount", { args: [`${dir}/fs`] }).output();
    await Deno.remove(dir, { recursive: true });
  }
  const seconds = (performance.now() - started) / 1000;
  const left = await leftovers(before, ["xdp_counter"]);
  const { p50, p95 } = percentiles(result.latencies);
  const statuses = Object.entries(result.statuses).map(([s, n]) => `${s}: ${n}`).join(", ");
  return {
    title: "Bad input over the socket (issue 12)",
    markdown: [
      `${count} requests (seed ${seed}) to a runtime process over its unix socket, ${seconds.toFixed(0)} s.`,
      "",
      "| what | value |",
      "| --- | --- |",
      `| answers by status | ${statuses} |`,
      `| 5xx or exceptions | ${result.failures.length} |`,
      `| latency p50 / p95 / max | ${p50.toFixed(2)} / ${p95.toFixed(2)} / ${
        Math.max(...result.latencies).toFixed(0)
      } ms |`,
      `| runtime answers /healthz after | ${alive ? "yes" : "no"} |`,
      `| left in the kernel / bpffs after unloading | ${left.length} / ${result.leftPins.length} |`,
      `| runtime RSS after / peak | ${rss!.toFixed(1)} / ${peak!.toFixed(1)} MiB |`,
      ...(result.failures.length ? ["", "```", ...result.failures.slice(0, 10), "```"] : []),
    ].join("\n"),
  };
}
