/** The histogram drawing of examples/syscall_latency.ts. */
import assert from "node:assert/strict";
import { drawLog2Histogram } from "../../../examples/syscall_latency.ts";

Deno.test("syscall latency example: log2 buckets up to the last non-empty one, bars scaled to the largest", () => {
  const text = drawLog2Histogram([1n, 0n, 4n, 2n, 0n, 0n]);
  const lines = text.split("\n");
  assert.equal(lines.length, 5);
  assert.match(lines[1], /^\s+0 -> 1 : 1 +\|\*{10} +\|$/);
  assert.match(lines[3], /^\s+4 -> 7 : 4 +\|\*{40}\|$/);
  assert.equal(drawLog2Histogram([0n, 0n]), "(no usecs counted)");
});
