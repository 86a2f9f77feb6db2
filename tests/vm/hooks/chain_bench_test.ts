/**
 * The chain benchmark (tests/bench/chain.ts) where the kernel allows extension programs, with small
 * counts so it fits the VM tier: 1, 2, 5 and 10 copies of the XDP counter really run in the dispatcher's
 * slots (every run must end in XDP_PASS), and a chain change is timed. Emulated (qemu TCG): the figures
 * show ratios, not this machine's speed; the table is printed for BENCHMARKS.md.
 * @module
 */
import assert from "node:assert/strict";
import { capTest } from "../../_caps.ts";
import { benchChain } from "../../bench/chain.ts";

capTest({
  name: "chain benchmark: the counter directly and in 1, 2, 5, 10 dispatcher slots; one chain change",
  needs: ["freplace"],
}, async () => {
  const { title, markdown, figures } = await benchChain({ repeat: 20_000, changes: 10 });
  console.log(`## ${title} (emulated: qemu TCG)\n\n${markdown}\n`);
  const perPacket = figures.filter((f) => f.unit === "ns/packet");
  assert.equal(perPacket.length, 6);
  assert.ok(perPacket.every((f) => f.value > 0));
  assert.ok(figures.some((f) => f.name.includes("XDP (dispatcher)")), "bpfd's XDP modify was timed");
});
