/**
 * XDP, tc and TCX counter programs attached through the HTTP functions to a veth between two namespaces
 * the test makes; real pings move the pinned counters; unload leaves no program, link, pin or qdisc.
 */
import assert from "node:assert/strict";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, kernelSnapshot, leftovers, readCounter, startTestRuntime } from "../../_runtime.ts";

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

Deno.test("xdp counter on a veth counts real pings, unload removes program, link and pins [proves xdp]", async () => {
  const before = kernelSnapshot();
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const load = await rt.call("load", {
    bytecode: { path: bytecodePath("xdp_counter") },
    programs: [{ name: "xdp_counter", type: "xdp" }],
    metadata: { app: "traffic-test" },
  });
  assert.equal(load.status, 200, JSON.stringify(load.body));
  const program = load.body.programs[0];
  assert.equal(program.kernel.type, "xdp");
  assert.match(program.program.tag, /^[0-9a-f]{16}$/);
  const counter = program.program.maps.xdp_packets;
  assert.equal(counter, `${rt.dir}/fs/maps/${program.id}/xdp_packets`);

  const attach = await rt.call("attach", {
    programId: program.id,
    attach: { type: "xdp", iface: net.hostIf, netns: net.hostNs },
  });
  assert.equal(attach.status, 200, JSON.stringify(attach.body));
  assert.match(
    await net.exec(net.hostNs, "ip", "link", "show", net.hostIf),
    new RegExp(`prog/xdp id ${program.id}`),
  );

  assert.equal(await net.ping(5), 5);
  assert.ok(readCounter(counter) >= 5, `counter ${readCounter(counter)} after 5 pings`);

  const unload = await rt.call("unload", { programId: program.id });
  assert.equal(unload.status, 200, JSON.stringify(unload.body));
  assert.deepEqual(unload.body.detachedLinks, [attach.body.linkId]);
  assert.doesNotMatch(await net.exec(net.hostNs, "ip", "link", "show", net.hostIf), /prog\/xdp/);
  assert.equal(await exists(counter), false);
  assert.equal(await exists(`${rt.dir}/fs/progs/${program.id}`), false);
  assert.equal(await exists(`${rt.dir}/fs/links/${attach.body.linkId}`), false);
  assert.deepEqual(await leftovers(before, ["xdp_counter"]), []);
  assert.equal(await net.ping(2), 2, "traffic flows after unload");
});

Deno.test("global data: verdict XDP_DROP set at load time drops pings and still counts them", async () => {
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const drop = btoa(String.fromCharCode(1, 0, 0, 0)); // XDP_DROP as a little-endian u32
  const { programs: [program] } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("xdp_counter") },
    programs: [{ name: "xdp_counter", type: "xdp" }],
    globalData: { verdict: drop },
  });
  assert.deepEqual(program.program.globalData, { verdict: drop });
  await rt.invoke("attach", {
    programId: program.id,
    attach: { type: "xdp", iface: net.hostIf, netns: net.hostNs, mode: "skb" },
  });
  assert.equal(await net.ping(3), 0);
  assert.ok(readCounter(program.program.maps.xdp_packets) >= 3);
});

for (const type of ["tc", "tcx"] as const) {
  Deno.test(`${type} counters on ingress and egress count real pings; unload leaves no ${type === "tc" ? "qdisc" : "link"} [proves ${type}]`, async () => {
    const before = kernelSnapshot();
    await using net = await VethPair.create();
    await using rt = await startTestRuntime();
    const counters: string[] = [];
    const links: number[] = [];
    for (const direction of ["ingress", "egress"]) {
      const { programs: [program] } = await rt.invoke("load", {
        bytecode: { path: bytecodePath("tc_counter") },
        programs: [{ name: "tc_counter", type }],
      });
      const { linkId } = await rt.invoke("attach", {
        programId: program.id,
        attach: { type, iface: net.hostIf, netns: net.hostNs, direction },
      });
      counters.push(program.program.maps.tc_packets);
      links.push(linkId);
    }
    if (type === "tc") {
      assert.match(await net.exec(net.hostNs, "tc", "qdisc", "show", "dev", net.hostIf), /clsact/);
    }
    assert.equal(await net.ping(4), 4);
    for (const counter of counters) {
      assert.ok(readCounter(counter) >= 4, `${counter}: ${readCounter(counter)}`);
    }

    const listed = await rt.invoke("list", { type });
    assert.equal(listed.programs.length, 2);
    assert.deepEqual(
      listed.programs.flatMap((p: { links: Array<{ id: number }> }) => p.links.map((l) => l.id)).sort(),
      links.sort(),
    );

    for (const p of listed.programs) await rt.invoke("unload", { programId: p.id });
    assert.doesNotMatch(await net.exec(net.hostNs, "tc", "qdisc", "show", "dev", net.hostIf), /clsact/);
    assert.equal((await rt.invoke("list", {})).programs.length, 0);
    assert.deepEqual(await leftovers(before, ["tc_counter"]), []);
  });
}

Deno.test("tc never removes a clsact qdisc or filters that someone else put there", async () => {
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  // Someone else's filter, at priority 100 (after bpfd's 50 + 1).
  await net.addForeignTcFilter(bytecodePath("tc_counter"), 100);
  const { programs: [program] } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("tc_counter") },
    programs: [{ name: "tc_counter", type: "tc" }],
  });
  await rt.invoke("attach", {
    programId: program.id,
    attach: { type: "tc", iface: net.hostIf, netns: net.hostNs, direction: "ingress" },
  });
  assert.equal(await net.ping(2), 2);
  assert.ok(readCounter(program.program.maps.tc_packets) >= 2);
  await rt.invoke("unload", { programId: program.id });
  const filters = await net.exec(net.hostNs, "tc", "filter", "show", "dev", net.hostIf, "ingress");
  assert.match(filters, /pref 100 bpf/, "the foreign filter is still there");
  assert.doesNotMatch(filters, /pref 51 /, "bpfd's filter (priority 50 + 1) is gone");
  assert.match(await net.exec(net.hostNs, "tc", "qdisc", "show", "dev", net.hostIf), /clsact/);
});

Deno.test("map sharing: a program loaded with mapOwnerId counts into its owner's map; pins go with the last user", async () => {
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const { programs: [owner] } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("tc_counter") },
    programs: [{ name: "tc_counter", type: "tcx" }],
  });
  const { programs: [sharer] } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("tc_counter") },
    programs: [{ name: "tc_counter", type: "tcx" }],
    mapOwnerId: owner.id,
  });
  assert.equal(sharer.program.mapOwnerId, owner.id);
  assert.equal(sharer.program.mapPinPath, owner.program.mapPinPath);
  assert.equal(sharer.program.maps.tc_packets, owner.program.maps.tc_packets);
  await rt.invoke("attach", {
    programId: sharer.id,
    attach: { type: "tcx", iface: net.hostIf, netns: net.hostNs, direction: "ingress" },
  });
  assert.equal(await net.ping(3), 3);
  assert.ok(readCounter(owner.program.maps.tc_packets) >= 3, "the owner's map saw the sharer's packets");

  await rt.invoke("unload", { programId: owner.id });
  assert.ok(await exists(owner.program.maps.tc_packets), "the map pin stays while the sharer uses it");
  await rt.invoke("unload", { programId: sharer.id });
  assert.equal(await exists(owner.program.maps.tc_packets), false);
});
