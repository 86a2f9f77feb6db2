/**
 * tc chains in bpfd's tc dispatcher, on a kernel that allows extension (freplace) programs (the VM
 * tier's 6.1 kernel, which has no TCX): several tc programs on one interface's ingress run in one
 * cls_bpf filter, in priority order, with proceed-on in tc verdicts; a reorder keeps the programs; a
 * filter someone else put on the qdisc is never touched; the last one left runs directly again.
 * @module
 */
import assert from "node:assert/strict";
import { TcActionValue } from "../../../ffi/abi.ts";
import { capTest } from "../../_caps.ts";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, kernelSnapshot, leftovers, startTestRuntime } from "../../_runtime.ts";
import { assertRan, chainCounts, chainOrder, loadChain } from "../../host/hooks/_chain.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

capTest({
  name:
    "tc dispatcher: three programs in priority order, proceed-on and a drop stop the chain, reorder keeps programs",
  needs: ["freplace"],
  proves: ["tc"],
}, async () => {
  const before = kernelSnapshot();
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  // Someone else's filter at priority 200 (after bpfd's): it stays whatever bpfd does.
  await net.exec(net.hostNs, "tc", "qdisc", "add", "dev", net.hostIf, "clsact");
  const filterAdd = ["filter", "add", "dev", net.hostIf, "ingress", "prio", "200", "bpf", "da", "obj"];
  await net.exec(net.hostNs, "tc", ...filterAdd, bytecodePath("tc_counter"), "sec", "tc");
  // Tags pass with TC_ACT_PIPE, which the default proceed-on (pipe, dispatcher_return) goes on after.
  const pipe = TcActionValue.pipe;
  const programs = await loadChain(rt, "tc", [
    { tag: 1, verdict: pipe },
    { tag: 2, verdict: pipe },
    { tag: 3, verdict: pipe },
    { tag: 4, verdict: TcActionValue.shot },
  ]);
  const [p1, p2, p3, p4] = programs;
  const attach = async (programId: number, priority: number) =>
    (await rt.invoke("attach", {
      programId,
      attach: { type: "tc", iface: net.hostIf, netns: net.hostNs, direction: "ingress", priority },
    })).linkId;
  const l1 = await attach(p1.id, 30);
  await attach(p2.id, 10);
  const l3 = await attach(p3.id, 20);
  const list = async () => (await rt.invoke("list", { type: "tc" })).hooks[0];
  let hook = await list();
  assert.ok(hook.dispatcherId);
  assert.deepEqual(hook.chain.map((e: Json) => e.programId), [p2.id, p3.id, p1.id]);
  const slots = hook.chain.map((e: Json) => e.slotProgramId);

  let counts = chainCounts(programs);
  assert.equal(await net.ping(3), 3);
  assert.deepEqual(chainOrder(programs), [2, 3, 1]);
  assertRan(chainCounts(programs), counts, [1, 2, 3], 3);

  // Proceed-on: after tag 3 the chain goes on only on TC_ACT_OK, so tag 1 no longer runs.
  await rt.invoke("modify", { linkId: l3, proceedOn: ["ok"] });
  counts = chainCounts(programs);
  assert.equal(await net.ping(3), 3);
  assertRan(chainCounts(programs), counts, [2, 3], 3);
  await rt.invoke("modify", { linkId: l3, proceedOn: ["pipe", "dispatcher_return"] });

  // A drop (TC_ACT_SHOT) stops the chain and the packet.
  const l4 = await attach(p4.id, 15);
  counts = chainCounts(programs);
  assert.equal(await net.ping(3, 0.05), 0);
  assertRan(chainCounts(programs), counts, [2, 4], 3);
  await rt.invoke("detach", { linkId: l4 });

  // Reorder: tag 1 first; the extensions are the same programs.
  await rt.invoke("modify", { linkId: l1, priority: 5 });
  hook = await list();
  assert.deepEqual(hook.chain.map((e: Json) => e.programId), [p1.id, p2.id, p3.id]);
  assert.deepEqual([...hook.chain.map((e: Json) => e.slotProgramId)].sort(), [...slots].sort());
  assert.equal(await net.ping(3), 3);
  assert.deepEqual(chainOrder(programs.slice(0, 3)), [1, 2, 3], "the detached tag 4 is left out");

  for (const p of [...programs].reverse()) await rt.invoke("unload", { programId: p.id });
  const filters = await net.exec(net.hostNs, "tc", "filter", "show", "dev", net.hostIf, "ingress");
  assert.match(filters, /pref 200 bpf/, "the foreign filter is still there");
  assert.doesNotMatch(filters, /pref (31|11|21|16|6) /, "bpfd's filter is gone");
  assert.deepEqual(await leftovers(before, ["chain_tc", "tc_dispatcher"]), []);
});
