/**
 * Zero loss on TCX: continuous pings across 1000 chain changes (reorders by `modify`, a fourth program
 * attached and detached) lose no packet — every program in the chain passes, so none may be dropped —
 * and every program that stays in the chain, moved or not, runs on every packet.
 */
import assert from "node:assert/strict";
import { VethPair } from "../../_netns.ts";
import { kernelSnapshot, leftovers, startTestRuntime } from "../../_runtime.ts";
import { chainCounts, loadChain } from "./_chain.ts";

const CHANGES = 1000;
const INTERVAL = 0.002;

Deno.test(`TCX: ${CHANGES} chain changes under continuous traffic lose no packet`, async () => {
  const before = kernelSnapshot();
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const programs = await loadChain(rt, "tcx", [{ tag: 1 }, { tag: 2 }, { tag: 3 }, { tag: 4 }]);
  const attach = (programId: number, priority: number) =>
    rt.invoke("attach", {
      programId,
      attach: { type: "tcx", iface: net.hostIf, netns: net.hostNs, direction: "ingress", priority },
    });
  const links: number[] = [];
  for (const [i, p] of programs.slice(0, 3).entries()) links.push((await attach(p.id, 10 * (i + 1))).linkId);
  let extra: number | undefined;

  let done = 0;
  const change = async () => {
    const i = done++;
    switch (i % 4) {
      case 0:
        await rt.invoke("modify", { linkId: links[0], priority: (i * 7) % 100 });
        break;
      case 1:
        extra = (await attach(programs[3].id, (i * 13) % 100)).linkId;
        break;
      case 2:
        await rt.invoke("modify", { linkId: links[2], priority: (i * 11) % 100 });
        break;
      case 3:
        await rt.invoke("detach", { linkId: extra });
        extra = undefined;
        break;
    }
  };
  // Time a few changes, then ping long enough to cover all of them with room to spare.
  const warmupStart = performance.now();
  for (let i = 0; i < 20; i++) await change();
  const perChange = (performance.now() - warmupStart) / 20;
  const seconds = (CHANGES * perChange) / 1000 * 3 + 3; // room for a machine busier than during the warm-up
  const count = Math.ceil(seconds / INTERVAL);
  const counts = chainCounts(programs);

  const traffic = net.startPing(count, INTERVAL);
  await new Promise((r) => setTimeout(r, 300));
  const started = performance.now();
  done = 0;
  while (done < CHANGES) await change();
  const changesTook = performance.now() - started;
  const { transmitted, received } = await traffic.result;
  const pingTook = count * INTERVAL * 1000;
  console.log(
    `${CHANGES} changes in ${changesTook.toFixed(0)} ms (${(changesTook / CHANGES).toFixed(2)} ms each), ` +
      `${transmitted} pings, ${received} replies`,
  );
  assert.ok(changesTook < pingTook, "the changes happened while traffic ran");
  assert.equal(transmitted, count);
  assert.equal(received, transmitted, `lost ${transmitted - received} of ${transmitted} packets`);
  // Every program ran on every packet, also the moved ones (a move swaps the program between two links
  // in place, see kernel/chains/tcx.ts).
  const after = chainCounts(programs);
  for (const tag of [1, 2, 3]) {
    const seen = after.get(tag)! - counts.get(tag)!;
    assert.ok(seen >= count, `tag ${tag} saw ${seen} of ${count} packets`);
  }
  for (const p of programs.reverse()) await rt.invoke("unload", { programId: p.id });
  assert.deepEqual(await leftovers(before, ["chain_tc"]), []);
});
