/**
 * TCX chains on this host's kernel: bpfd orders its programs on one hook by priority with mprog's
 * before/after anchors, moves them on `modify` without reloading, never touches programs others put on
 * the hook, and loses no packet while the chain changes a thousand times under traffic.
 */
import assert from "node:assert/strict";
import { BpfAttachType } from "../../../ffi/abi.ts";
import * as bpf from "../../../ffi/libbpf.ts";
import { mprogQuery, tcxLinkCreate } from "../../../ffi/bpf.ts";
import { BpfObject } from "../../../ffi/object.ts";
import { ifNameToIndex, inNetns } from "../../../ffi/libc.ts";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, kernelSnapshot, leftovers, readCounter, startTestRuntime } from "../../_runtime.ts";
import { chainCounts, chainOrder, loadChain } from "./_chain.ts";

const NAMES = ["chain_tc", "tc_counter"];

/** The host side's interface index (read inside its namespace). */
function ifIndexOf(net: VethPair): number {
  return inNetns(`/run/netns/${net.hostNs}`, () => ifNameToIndex(net.hostIf));
}

/** Program ids on the host side's TCX ingress, in run order, as the kernel reports them. */
function tcxIngress(net: VethPair): number[] {
  const ifindex = ifIndexOf(net);
  return inNetns(
    `/run/netns/${net.hostNs}`,
    () => mprogQuery(ifindex, BpfAttachType.TCX_INGRESS).programIds,
  );
}

/** The foreign program's own counter (its map is not pinned; read it through the object). */
function foreignCount(obj: BpfObject): number {
  const value = bpf.mapLookup(obj.mapFd("tc_packets"), new Uint8Array(4), 8);
  return value ? Number(new DataView(value.buffer).getBigUint64(0, true)) : 0;
}

Deno.test("TCX: three programs run in priority order; modify reorders under traffic without reload; others' TCX program untouched", async () => {
  const before = kernelSnapshot();
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();

  // Someone else's TCX program, attached before bpfd's: it stays first and keeps counting (it returns
  // TC_ACT_UNSPEC, so the chain goes on to bpfd's programs).
  const foreign = BpfObject.open(bytecodePath("tc_counter"));
  let foreignLink = -1;
  try {
    const verdict = foreign.globals().find((g) => g.name === "verdict")!;
    foreign.setGlobal(verdict, new Uint8Array([0xff, 0xff, 0xff, 0xff]));
    foreign.load();
    const ifindex = ifIndexOf(net);
    foreignLink = inNetns(
      `/run/netns/${net.hostNs}`,
      () =>
        tcxLinkCreate(
          "foreign tcx",
          foreign.programFd("tc_counter"),
          ifindex,
          BpfAttachType.TCX_INGRESS,
          {
            flags: 0,
          },
          0n,
        ),
    );
    const foreignId = bpf.programInfo(foreign.programFd("tc_counter")).id;

    // tag 1 at priority 30, tag 2 at 10, tag 3 at 20: the chain runs 2, 3, 1.
    const programs = await loadChain(rt, "tcx", [{ tag: 1 }, { tag: 2 }, { tag: 3 }]);
    const links: number[] = [];
    for (const [p, priority] of [[programs[0], 30], [programs[1], 10], [programs[2], 20]] as const) {
      const { linkId } = await rt.invoke("attach", {
        programId: p.id,
        attach: { type: "tcx", iface: net.hostIf, netns: net.hostNs, direction: "ingress", priority },
      });
      links.push(linkId);
    }
    assert.deepEqual(tcxIngress(net), [foreignId, programs[1].id, programs[2].id, programs[0].id]);
    assert.equal(await net.ping(3), 3);
    assert.deepEqual(chainOrder(programs), [2, 3, 1]);

    const { hooks } = await rt.invoke("list", { type: "tcx" });
    assert.equal(hooks.length, 1);
    assert.deepEqual(
      hooks[0].chain.map((e: { programId: number; managed: boolean }) => [e.programId, e.managed]),
      [[foreignId, false], [programs[1].id, true], [programs[2].id, true], [programs[0].id, true]],
    );

    // Under traffic: tag 1 to the front (priority 5), then tag 3 to the back (priority 40).
    const countsBefore = chainCounts(programs);
    const traffic = net.ping(200, 0.005);
    await new Promise((r) => setTimeout(r, 200));
    const moved = await rt.invoke("modify", { linkId: links[0], priority: 5 });
    assert.equal(moved.programId, programs[0].id, "same program, not reloaded");
    assert.equal(moved.attach.priority, 5);
    await rt.invoke("modify", { linkId: links[2], priority: 40 });
    assert.equal(await traffic, 200, "no packet lost while the chain changed");
    assert.deepEqual(tcxIngress(net), [foreignId, programs[0].id, programs[1].id, programs[2].id]);
    assert.deepEqual(chainOrder(programs), [1, 2, 3]);
    const countsAfter = chainCounts(programs);
    for (const p of programs) {
      assert.ok(
        countsAfter.get(p.tag)! >= countsBefore.get(p.tag)! + 190,
        `tag ${p.tag} kept its map and counts`,
      );
    }
    assert.ok(readCounter(programs[0].maps.chain_ticks) > 0);
    assert.ok(foreignCount(foreign) >= 200, "the foreign program saw every packet");
    const listed = await rt.invoke("get", { programId: programs[0].id });
    assert.equal(listed.links[0].attach.priority, 5);

    // Bad input: a proceed-on TCX cannot honour, a priority out of range, a link that is not there.
    const bad = await rt.call("modify", { linkId: links[1], proceedOn: ["ok"] });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, "proceedOn");
    assert.match(bad.body.error.message, /TC_ACT_UNSPEC/);
    assert.equal((await rt.call("modify", { linkId: links[1], priority: 5000 })).status, 400);
    assert.equal((await rt.call("modify", { linkId: 999999, priority: 1 })).status, 404);
    assert.equal((await rt.call("modify", { linkId: links[1] })).status, 400);

    for (const p of programs.reverse()) await rt.invoke("unload", { programId: p.id });
    assert.deepEqual(tcxIngress(net), [foreignId], "only the foreign program is left");
    assert.equal(await net.ping(2), 2);
  } finally {
    bpf.closeFd(foreignLink);
    foreign.close();
  }
  assert.deepEqual(await leftovers(before, NAMES), []);
});
