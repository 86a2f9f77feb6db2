/**
 * XDP on a kernel that refuses extension (freplace) programs, as this host's does: the first program on
 * an interface runs attached directly; a second is refused with a 409 that says why, and leaves nothing
 * behind (no dispatcher, no extension, no pins where libxdp keeps its state); the first keeps running.
 * Where the kernel allows extensions (the VM tier), tests/vm/hooks/ prove the dispatcher instead.
 */
import assert from "node:assert/strict";
import { kernelCaps } from "../../_caps.ts";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, kernelSnapshot, leftovers, readCounter, startTestRuntime } from "../../_runtime.ts";
import { libxdpDir } from "../../../kernel/chains/xdp.ts";

const caps = await kernelCaps();

async function dispatchDirs(): Promise<string[]> {
  const found: string[] = [];
  try {
    for await (const e of Deno.readDir(libxdpDir())) if (e.name.startsWith("dispatch-")) found.push(e.name);
  } catch { /* no libxdp state at all */ }
  return found.sort();
}

Deno.test({
  name:
    "XDP where the kernel refuses freplace: the first program runs directly, a second is refused (409, says why), the first keeps running",
  ignore: caps.caps.freplace.available,
  async fn() {
    const before = kernelSnapshot();
    const dirsBefore = await dispatchDirs();
    await using net = await VethPair.create();
    await using rt = await startTestRuntime();
    const load = async () =>
      (await rt.invoke("load", {
        bytecode: { path: bytecodePath("xdp_counter") },
        programs: [{ name: "xdp_counter", type: "xdp" }],
      })).programs[0];
    const first = await load();
    const second = await load();
    const xdp = (programId: number, priority: number) => ({
      programId,
      attach: { type: "xdp", iface: net.hostIf, netns: net.hostNs, priority },
    });
    const ok = await rt.call("attach", xdp(first.id, 20));
    assert.equal(ok.status, 200);
    assert.match(
      await net.exec(net.hostNs, "ip", "link", "show", net.hostIf),
      new RegExp(`prog/xdp id ${first.id} `),
    );

    const refused = await rt.call("attach", xdp(second.id, 10));
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.match(refused.body.error.message, /does not allow extension \(freplace\) programs/);
    assert.equal(refused.body.error.errno, "EPERM");
    assert.equal(rt.node.state.links().length, 1, "no record of the refused attach");

    assert.match(
      await net.exec(net.hostNs, "ip", "link", "show", net.hostIf),
      new RegExp(`prog/xdp id ${first.id} `),
    );
    const counted = readCounter(first.program.maps.xdp_packets);
    assert.equal(await net.ping(3), 3);
    assert.ok(readCounter(first.program.maps.xdp_packets) >= counted + 3, "the first program still counts");
    assert.equal(readCounter(second.program.maps.xdp_packets), 0);
    assert.deepEqual(await dispatchDirs(), dirsBefore, "no dispatcher pins left where libxdp keeps them");
    assert.deepEqual(await leftovers(before, ["xdp_dispatcher"]), [], "no dispatcher left in the kernel");

    const { hooks } = await rt.invoke("list", { type: "xdp" });
    assert.deepEqual(
      hooks.map((h: { chain: Array<{ programId: number }> }) => h.chain.map((e) => e.programId)),
      [[first.id]],
    );
    // Alone on the hook, a program's priority and proceed-on change without touching the kernel.
    const modified = await rt.invoke("modify", { linkId: ok.body.linkId, priority: 5, proceedOn: ["pass"] });
    assert.deepEqual([modified.attach.priority, modified.attach.proceedOn], [5, ["pass"]]);
    const badAction = await rt.call("modify", { linkId: ok.body.linkId, proceedOn: ["shot"] });
    assert.equal(badAction.status, 400);
    assert.match(badAction.body.error.field, /proceedOn/);

    // Once the first is gone, the second attaches.
    await rt.invoke("detach", { linkId: ok.body.linkId });
    assert.doesNotMatch(await net.exec(net.hostNs, "ip", "link", "show", net.hostIf), /prog\/xdp/);
    assert.equal((await rt.call("attach", xdp(second.id, 10))).status, 200);
    await rt.invoke("unload", { programId: second.id });
    await rt.invoke("unload", { programId: first.id });
    assert.deepEqual(await leftovers(before, ["xdp_counter", "xdp_dispatcher"]), []);
  },
});

Deno.test({
  name:
    "tc where the kernel refuses freplace: a second program on one hook is refused (409, says why, points to tcx); the first keeps running",
  ignore: caps.caps.freplace.available,
  async fn() {
    const before = kernelSnapshot();
    await using net = await VethPair.create();
    await using rt = await startTestRuntime();
    const load = async () =>
      (await rt.invoke("load", {
        bytecode: { path: bytecodePath("tc_counter") },
        programs: [{ name: "tc_counter", type: "tc" }],
      })).programs[0];
    const first = await load();
    const second = await load();
    const tc = (programId: number, direction: string) => ({
      programId,
      attach: { type: "tc", iface: net.hostIf, netns: net.hostNs, direction, priority: 10 },
    });
    assert.equal((await rt.call("attach", tc(first.id, "ingress"))).status, 200);
    const refused = await rt.call("attach", tc(second.id, "ingress"));
    assert.equal(refused.status, 409);
    assert.match(refused.body.error.message, /does not allow extension \(freplace\) programs/);
    assert.match(refused.body.error.message, /type tcx/);
    const filters = await net.exec(net.hostNs, "tc", "filter", "show", "dev", net.hostIf, "ingress");
    assert.equal(filters.match(/ handle 0x/g)?.length, 1, filters);
    assert.equal(await net.ping(3), 3);
    assert.ok(readCounter(first.program.maps.tc_packets) >= 3);
    // The other direction is another hook: no chain, no refusal.
    assert.equal((await rt.call("attach", tc(second.id, "egress"))).status, 200);
    await rt.invoke("unload", { programId: second.id });
    await rt.invoke("unload", { programId: first.id });
    assert.doesNotMatch(await net.exec(net.hostNs, "tc", "qdisc", "show", "dev", net.hostIf), /clsact/);
    assert.deepEqual(await leftovers(before, ["tc_counter", "tc_dispatcher"]), []);
  },
});
