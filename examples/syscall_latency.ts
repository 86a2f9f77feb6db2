/**
 * Prints the syscall latency histogram of bytecode/syscall_latency.bpf.c (loaded by bpfd as raw
 * tracepoints or tp_btf) from its pinned `latency_us` map, as libbpf-tools print theirs. It needs no
 * privileges: only read access to the pin (group `bpfd`), which it opens read-only.
 *
 *   deno run -A examples/syscall_latency.ts /run/bpfd/fs/maps/<program id>/latency_us [--interval 1] [--count 5]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { readMapU64 } from "../mod.ts";

/** The buckets of bytecode/syscall_latency.bpf.c's histogram. */
const SLOTS = 27;

/** The histogram as libbpf-tools' print_log2_hist draws it: range, count, bar. */
export function drawLog2Histogram(counts: bigint[], unit = "usecs"): string {
  const last = counts.findLastIndex((c) => c > 0n);
  if (last < 0) return `(no ${unit} counted)`;
  const max = counts.reduce((a, b) => (b > a ? b : a), 0n);
  const lines = [`${unit.padStart(18)} : count     distribution`];
  for (let i = 0; i <= last; i++) {
    const low = i === 0 ? 0 : 2 ** i, high = 2 ** (i + 1) - 1;
    const bar = "*".repeat(Number((counts[i] * 40n) / (max || 1n)));
    lines.push(`${`${low} -> ${high}`.padStart(18)} : ${String(counts[i]).padEnd(9)} |${bar.padEnd(40)}|`);
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { interval: { type: "string", default: "1" }, count: { type: "string", default: "1" } },
  });
  const path = positionals[0];
  if (!path) {
    console.error("usage: syscall_latency.ts PIN_PATH_OF_latency_us [--interval S] [--count N]");
    Deno.exit(2);
  }
  for (let round = 0; round < Number(values.count); round++) {
    if (round > 0) await new Promise((r) => setTimeout(r, Number(values.interval) * 1000));
    const counts = Array.from({ length: SLOTS }, (_, i) => readMapU64(path, i));
    console.log(drawLog2Histogram(counts));
  }
}
