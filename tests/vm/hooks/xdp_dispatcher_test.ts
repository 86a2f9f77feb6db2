/**
 * XDP chains in libxdp's dispatcher, on a kernel that allows extension (freplace) programs (the VM
 * tier): three programs with priorities and proceed-on on one veth, with traffic showing the order and
 * the proceed-on decisions; a reorder without reload; the 11th program refused; a program that
 * `xdp-loader` adds joins the chain and survives bpfd's changes; and continuous traffic across chain
 * changes loses nothing.
 * @module
 */
import assert from "node:assert/strict";
import { XdpActionValue } from "../../../ffi/abi.ts";
import { capTest } from "../../_caps.ts";
import { VethPair } from "../../_netns.ts";
import {
  bytecodePath,
  kernelSnapshot,
  leftovers,
  startTestRuntime,
  type TestRuntime,
} from "../../_runtime.ts";
import { assertRan, chainCounts, chainOrder, loadChain } from "../../host/hooks/_chain.ts";

const NAMES = ["chain_xdp", "xdp_dispatcher", "xdp_counter"];

// deno-lint-ignore no-explicit-any
type Json = any;

const xdpAttach = (net: VethPair, programId: number, priority: number, proceedOn?: string[]) => ({
  programId,
  attach: {
    type: "xdp",
    iface: net.hostIf,
    netns: net.hostNs,
    priority,
    ...(proceedOn ? { proceedOn } : {}),
  },
});

async function hookChain(rt: TestRuntime): Promise<Json> {
  const { hooks } = await rt.invoke("list", { type: "xdp" });
  assert.equal(hooks.length, 1);
  return hooks[0];
}

capTest({
  name:
    "XDP dispatcher: three programs in priority order, proceed-on and drop stop the chain, reorder without reload",
  needs: ["freplace"],
  proves: ["xdp"],
}, async () => {
  const before = kernelSnapshot();
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const programs = await loadChain(rt, "xdp", [{ tag: 1 }, { tag: 2 }, { tag: 3 }, {
    tag: 4,
    verdict: XdpActionValue.drop,
  }]);
  const [p1, p2, p3, p4] = programs;
  const l1 = (await rt.invoke("attach", xdpAttach(net, p1.id, 30))).linkId;
  // Alone, the program replaces the dispatcher's main function (libxdp's trick): one slot, no chain cost.
  let hook = await hookChain(rt);
  assert.ok(hook.dispatcherId);
  assert.deepEqual(hook.chain.map((e: Json) => e.programId), [p1.id]);
  assert.equal(await net.ping(2), 2);
  const l2 = (await rt.invoke("attach", xdpAttach(net, p2.id, 10))).linkId;
  const l3 = (await rt.invoke("attach", xdpAttach(net, p3.id, 20))).linkId;

  hook = await hookChain(rt);
  assert.ok(hook.dispatcherId, "several programs run in a dispatcher");
  assert.match(
    await net.exec(net.hostNs, "ip", "link", "show", net.hostIf),
    new RegExp(`prog/xdp id ${hook.dispatcherId} `),
  );
  assert.deepEqual(hook.chain.map((e: Json) => e.programId), [p2.id, p3.id, p1.id]);
  const slots = new Map(hook.chain.map((e: Json) => [e.programId, e.slotProgramId]));

  let counts = chainCounts(programs);
  assert.equal(await net.ping(3), 3);
  assert.deepEqual(chainOrder(programs), [2, 3, 1], "traffic runs the programs in priority order");
  assertRan(chainCounts(programs), counts, [1, 2, 3], 3);

  // Proceed-on: tag 3 passes but goes on only after a drop, so the chain ends with it.
  await rt.invoke("modify", { linkId: l3, proceedOn: ["drop"] });
  counts = chainCounts(programs);
  assert.equal(await net.ping(3), 3);
  assertRan(chainCounts(programs), counts, [2, 3], 3);
  await rt.invoke("modify", { linkId: l3, proceedOn: ["pass", "dispatcher_return"] });

  // A drop stops the chain: tag 4 (priority 15, verdict drop) runs after tag 2; 3 and 1 never see it.
  const l4 = (await rt.invoke("attach", xdpAttach(net, p4.id, 15))).linkId;
  counts = chainCounts(programs);
  assert.equal(await net.ping(3, 0.05), 0, "tag 4 drops");
  assertRan(chainCounts(programs), counts, [2, 4], 3);
  await rt.invoke("detach", { linkId: l4 });

  // Reorder without reload: tag 1 first. Same programs, same extensions, counters keep counting.
  counts = chainCounts(programs);
  const moved = await rt.invoke("modify", { linkId: l1, priority: 5 });
  assert.equal(moved.programId, p1.id);
  hook = await hookChain(rt);
  assert.deepEqual(hook.chain.map((e: Json) => e.programId), [p1.id, p2.id, p3.id]);
  for (const e of hook.chain) assert.equal(e.slotProgramId, slots.get(e.programId), "extension not reloaded");
  assert.equal(await net.ping(3), 3);
  assert.deepEqual(chainOrder(programs.slice(0, 3)), [1, 2, 3], "the detached tag 4 is left out");
  assertRan(chainCounts(programs), counts, [1, 2, 3], 3);

  // Back to one program: it replaces the main function again, still the same extension.
  await rt.invoke("detach", { linkId: l2 });
  await rt.invoke("detach", { linkId: l3 });
  hook = await hookChain(rt);
  assert.deepEqual(hook.chain.map((e: Json) => [e.programId, e.slotProgramId]), [[p1.id, slots.get(p1.id)]]);
  counts = chainCounts(programs);
  assert.equal(await net.ping(2), 2);
  assertRan(chainCounts(programs), counts, [1], 2);
  for (const p of [...programs].reverse()) await rt.invoke("unload", { programId: p.id });
  assert.doesNotMatch(await net.exec(net.hostNs, "ip", "link", "show", net.hostIf), /prog\/xdp/);
  assert.deepEqual(await leftovers(before, NAMES), []);
});

capTest({
  name: "XDP dispatcher: the 11th program on one interface is refused clearly; the ten keep running",
  needs: ["freplace"],
}, async () => {
  const before = kernelSnapshot();
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const programs = await loadChain(rt, "xdp", Array.from({ length: 11 }, (_, i) => ({ tag: i })));
  for (const p of programs.slice(0, 10)) await rt.invoke("attach", xdpAttach(net, p.id, 50));
  const refused = await rt.call("attach", xdpAttach(net, programs[10].id, 1));
  assert.equal(refused.status, 409);
  assert.match(refused.body.error.message, /already runs 10 XDP programs/);
  assert.equal(rt.node.state.links().length, 10);
  assert.equal(await net.ping(2), 2);
  assert.equal(chainOrder(programs).length, 10);
  for (const p of [...programs].reverse()) await rt.invoke("unload", { programId: p.id });
  assert.deepEqual(await leftovers(before, NAMES), []);
});

capTest({
  name:
    "XDP dispatcher: a program xdp-loader adds joins bpfd's chain; both managers' changes keep each other's programs",
  needs: ["freplace"],
}, async () => {
  const before = kernelSnapshot();
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const programs = await loadChain(rt, "xdp", [{ tag: 1 }, { tag: 2 }]);
  const loader = (...args: string[]) => net.exec(net.hostNs, "xdp-loader", ...args);
  // One bpfd program (in a one-slot dispatcher), then xdp-loader's joins, then bpfd's second.
  const l1 = (await rt.invoke("attach", xdpAttach(net, programs[0].id, 10))).linkId;
  await loader("load", "-m", "native", net.hostIf, bytecodePath("xdp_counter"));
  try {
    assert.deepEqual((await hookChain(rt)).chain.map((e: Json) => e.managed), [true, false]);
    const l2 = (await rt.invoke("attach", xdpAttach(net, programs[1].id, 20))).linkId;
    const status = await loader("status", net.hostIf);
    assert.match(status, /xdp_dispatcher/, status);
    assert.match(status, /chain_xdp[\s\S]*chain_xdp/, "xdp-loader shows bpfd's programs");
    assert.match(status, /xdp_counter/, status);
    let hook = await hookChain(rt);
    assert.deepEqual(
      hook.chain.map((e: Json) => e.managed),
      [true, true, false],
      "libxdp's default priority 50",
    );
    assert.equal(hook.chain[2].name, "xdp_counter");
    let counts = chainCounts(programs);
    assert.equal(await net.ping(3), 3);
    assertRan(chainCounts(programs), counts, [1, 2], 3);

    // bpfd moves its tag 2 past the foreign program: the foreign one stays, with its priority.
    await rt.invoke("modify", { linkId: l2, priority: 60 });
    hook = await hookChain(rt);
    assert.deepEqual(hook.chain.map((e: Json) => [e.managed, e.priority]), [[true, 10], [false, 50], [
      true,
      60,
    ]]);
    assert.match(await loader("status", net.hostIf), /xdp_counter/);
    counts = chainCounts(programs);
    assert.equal(await net.ping(3), 3);
    assertRan(chainCounts(programs), counts, [1, 2], 3);

    // bpfd leaves: the foreign program runs alone in libxdp's dispatcher.
    await rt.invoke("detach", { linkId: l1 });
    await rt.invoke("detach", { linkId: l2 });
    const status2 = await loader("status", net.hostIf);
    assert.match(status2, /xdp_counter/);
    assert.doesNotMatch(status2, /chain_xdp/);
  } finally {
    await loader("unload", net.hostIf, "--all").catch(() => {});
  }
  assert.doesNotMatch(await net.exec(net.hostNs, "ip", "link", "show", net.hostIf), /prog\/xdp/);
  for (const p of programs) await rt.invoke("unload", { programId: p.id });
  assert.deepEqual(await leftovers(before, ["chain_xdp", "xdp_dispatcher"]), []);
});

const CHANGES = 1000;
const INTERVAL = 0.01;

capTest({
  name: `XDP dispatcher: continuous traffic across ${CHANGES} chain changes loses no packet`,
  needs: ["freplace"],
}, async () => {
  const before = kernelSnapshot();
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const programs = await loadChain(rt, "xdp", [{ tag: 1 }, { tag: 2 }, { tag: 3 }, { tag: 4 }]);
  const links: number[] = [];
  for (const [i, p] of programs.slice(0, 3).entries()) {
    links.push((await rt.invoke("attach", xdpAttach(net, p.id, 10 * (i + 1)))).linkId);
  }
  let extra: number | undefined;
  let done = 0;
  const change = async () => {
    const i = done++;
    if (i % 4 === 0) await rt.invoke("modify", { linkId: links[0], priority: (i * 7) % 100 });
    if (i % 4 === 1) {
      extra = (await rt.invoke("attach", xdpAttach(net, programs[3].id, (i * 13) % 100))).linkId;
    }
    if (i % 4 === 2) await rt.invoke("modify", { linkId: links[2], priority: (i * 11) % 100 });
    if (i % 4 === 3) {
      await rt.invoke("detach", { linkId: extra });
      extra = undefined;
    }
  };
  const warmup = performance.now();
  for (let i = 0; i < 8; i++) await change();
  const perChange = (performance.now() - warmup) / 8;
  const planned = CHANGES;
  // Traffic for twice the expected time of the changes: it must outlast them (checked below).
  const count = Math.ceil((planned * perChange * 2 + 3000) / 1000 / INTERVAL);
  const counts = chainCounts(programs);
  const traffic = net.startPing(count, INTERVAL);
  await new Promise((r) => setTimeout(r, 500));
  done = 0;
  const started = performance.now();
  while (done < planned) await change();
  const took = performance.now() - started;
  const { transmitted, received } = await traffic.result;
  console.log(
    `${planned} XDP chain changes in ${took.toFixed(0)} ms (${
      (took / planned).toFixed(1)
    } ms each, emulated), ` +
      `${transmitted} pings, ${received} replies`,
  );
  assert.ok(took < count * INTERVAL * 1000, "the changes happened while traffic ran");
  assert.equal(received, transmitted, `lost ${transmitted - received} of ${transmitted}`);
  const after = chainCounts(programs);
  for (const tag of [1, 2, 3]) {
    assert.ok(after.get(tag)! - counts.get(tag)! >= count, `tag ${tag} saw every packet`);
  }
  for (const p of [...programs].reverse()) await rt.invoke("unload", { programId: p.id });
  assert.deepEqual(await leftovers(before, NAMES), []);
});
