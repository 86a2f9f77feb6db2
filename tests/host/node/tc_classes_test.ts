/**
 * tc cls_bpf filters on a classful qdisc, added by iproute2's `tc` behind bpfd's back in a test network
 * namespace: one on an HTB qdisc's handle `1:`, one on its class `1:10`. `list --all` of a runtime process
 * and the inventory snapshot show both with their parent and interface, and nothing once they are deleted;
 * past the cap on qdiscs and classes, the filters left out are reported.
 */
import assert from "node:assert/strict";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, RuntimeProcess, startTestRuntime } from "../../_runtime.ts";
import { kernelAttachments } from "../../../kernel/attachments.ts";
import { takeInventory } from "../../../runtime/inventory.ts";
import type { InventoryAttachment } from "../../../model/inventory.ts";

/** An HTB qdisc `1:` with classes 1:1 and 1:10 on the host side, a cls_bpf filter on `1:` and one on `1:10`. */
async function classfulFilters(net: VethPair): Promise<{ onQdisc: number; onClass: number }> {
  const tc = (...args: string[]) => net.exec(net.hostNs, "tc", ...args);
  const dev = ["dev", net.hostIf];
  await tc("qdisc", "add", ...dev, "root", "handle", "1:", "htb", "default", "10");
  await tc("class", "add", ...dev, "parent", "1:", "classid", "1:1", "htb", "rate", "100mbit");
  await tc("class", "add", ...dev, "parent", "1:1", "classid", "1:10", "htb", "rate", "50mbit");
  const filter = async (parent: string, prio: number) => {
    const obj = ["obj", bytecodePath("tc_counter"), "sec", "tc", "da"];
    await tc("filter", "add", ...dev, "parent", parent, "prio", String(prio), "bpf", ...obj);
    const shown = await tc("filter", "show", ...dev, "parent", parent);
    const id = Number(shown.match(new RegExp(`pref ${prio} bpf .* id (\\d+) `))?.[1]);
    if (!(id > 0)) throw new Error(`no program id in tc's answer:\n${shown}`);
    return id;
  };
  return { onQdisc: await filter("1:", 3), onClass: await filter("1:10", 4) };
}

Deno.test("list --all and the inventory show tc filters on an HTB qdisc's handle and on its class, and not once deleted", async () => {
  await using net = await VethPair.create();
  const { onQdisc, onClass } = await classfulFilters(net);
  const iface = `${net.hostIf}@${net.hostNs}`;
  const netnsIno = Deno.statSync(`/run/netns/${net.hostNs}`).ino;
  const dir = await Deno.makeTempDir({ prefix: "bpfd-tc-classes-" });
  const rt = await RuntimeProcess.start(dir);
  try {
    const listed = async () => {
      const { status, body } = await rt.call("list", { all: true, holders: false });
      assert.equal(status, 200, JSON.stringify(body));
      return body.programs as Array<{ id: number; managed: boolean; attachments?: InventoryAttachment[] }>;
    };
    const programs = await listed();
    const filterOf = (id: number) => {
      const p = programs.find((p) => p.id === id);
      assert.equal(p?.managed, false, `program ${id} listed as not managed`);
      return p.attachments?.filter((a) => a.kind === "tc (netlink)");
    };
    assert.deepEqual(filterOf(onQdisc), [{
      kind: "tc (netlink)",
      iface,
      netnsIno,
      attachType: "1:",
      target: "priority 3 handle 0x1 direct-action tc_counter.bpf.o:[tc]",
    }]);
    assert.deepEqual(filterOf(onClass), [{
      kind: "tc (netlink)",
      iface,
      netnsIno,
      attachType: "1:10",
      target: "priority 4 handle 0x1 direct-action tc_counter.bpf.o:[tc]",
    }]);

    await using inProcess = await startTestRuntime();
    const snapshot = await takeInventory(inProcess.node, { nodeName: "test-node" });
    for (const id of [onQdisc, onClass]) {
      assert.deepEqual(snapshot.spec.programs.find((p) => p.id === id)?.attachments, filterOf(id));
    }

    for (const [parent, prio] of [["1:10", "4"], ["1:", "3"]]) {
      await net.exec(net.hostNs, "tc", "filter", "del", "dev", net.hostIf, "parent", parent, "prio", prio);
    }
    const after = await listed();
    const left = after.filter((p) => p.id === onQdisc || p.id === onClass); // until the kernel frees them
    assert.deepEqual(left.flatMap((p) => p.attachments ?? []), [], "the programs are attached nowhere");
    const onIface = after.flatMap((p) => p.attachments ?? []).filter((a) => a.iface === iface);
    assert.deepEqual(onIface, [], "nothing is attached to the test interface");
  } finally {
    await rt.stop();
    await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("tc filters: past the cap on an interface's qdiscs and classes, the rest is not read and is reported", async () => {
  await using net = await VethPair.create();
  const { onQdisc, onClass } = await classfulFilters(net);
  const iface = `${net.hostIf}@${net.hostNs}`;
  const capped: Array<[string, number]> = [];
  const found = kernelAttachments({ maxTcParents: 2, onTcCapped: (i, n) => capped.push([i, n]) });
  assert.equal(found.get(onQdisc)?.[0]?.attachType, "1:", "the qdisc's own filters come first");
  assert.equal(found.get(onClass), undefined, "parents are 1:, 1:1, 1:10: the third is past the cap");
  assert.deepEqual(capped.filter(([i]) => i === iface), [[iface, 1]]);
  const all = kernelAttachments({ onTcCapped: (i, n) => capped.push([i, n]) });
  assert.equal(all.get(onClass)?.[0]?.attachType, "1:10");
  assert.equal(capped.filter(([i]) => i === iface).length, 1, "under the default cap: nothing reported");
});
