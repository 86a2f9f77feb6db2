/**
 * Programs other tools attach without a BPF link: a tc cls_bpf filter added by iproute2's `tc` in a test
 * network namespace, and a uprobe perf event attached with `ioctl(PERF_EVENT_IOC_SET_BPF)` by a helper
 * process (as bcc does). `list --all`, the node's inventory snapshot and the CLI's table show where each is
 * attached, and the helper as the perf event's holder.
 */
import assert from "node:assert/strict";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, fixturePath, startTestRuntime } from "../../_runtime.ts";
import { render } from "../../../cli/main.ts";
import { takeInventory } from "../../../runtime/inventory.ts";
import type { InventoryAttachment, InventoryHolder } from "../../../model/inventory.ts";

const helper = new URL("./_perf_holder.ts", import.meta.url).pathname;

Deno.test("list --all, the inventory and the CLI show a tc filter from iproute2 and a perf event attached with ioctl", async () => {
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const tcId = await net.addForeignTcFilter(bytecodePath("tc_counter"), 7);
  const target = fixturePath("uprobe_target");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      helper,
      bytecodePath("uprobe_counter"),
      "uprobe_counter",
      target,
      "bpfd_probe_target",
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  try {
    let first = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      first += chunk;
      if (first.includes("\n")) break;
    }
    const { programId: perfId } = JSON.parse(first || "{}");
    assert.ok(perfId > 0, `the helper attached a program: ${first}`);

    const out = await rt.invoke("list", { all: true });
    const shown = (id: number) => out.programs.find((p: { id: number }) => p.id === id);
    const tc = shown(tcId);
    assert.equal(tc?.managed, false);
    const filter = tc.attachments.find((a: InventoryAttachment) => a.kind === "tc (netlink)");
    assert.ok(filter, `tc filter listed: ${JSON.stringify(tc.attachments)}`);
    assert.equal(filter.iface, `${net.hostIf}@${net.hostNs}`);
    assert.equal(filter.attachType, "ingress");
    assert.match(filter.target, /^priority 7 handle 0x1 direct-action tc_counter\.bpf\.o:\[tc\]$/);

    const perf = shown(perfId);
    assert.equal(perf?.managed, false);
    const event = perf.attachments.find((a: InventoryAttachment) => a.kind === "perf_event (no link)");
    assert.ok(event, `perf event listed: ${JSON.stringify(perf.attachments)}`);
    assert.equal(event.attachType, "uprobe");
    assert.match(event.target, new RegExp(`^${target}\\+0x[0-9a-f]+$`));
    assert.deepEqual(perf.holders.map((h: InventoryHolder) => h.pid), [child.pid], "the helper holds it");

    const snapshot = await takeInventory(rt.node, { nodeName: "test-node" });
    const inInventory = snapshot.spec.programs.find((p) => p.id === perfId);
    assert.deepEqual(inInventory?.attachments, [event]);
    assert.deepEqual(inInventory?.holders?.map((h) => h.pid), [child.pid]);
    assert.deepEqual(snapshot.spec.programs.find((p) => p.id === tcId)?.attachments, [filter]);

    const table = render("list", out);
    assert.match(table, new RegExp(`${tcId} .*tc \\(netlink\\) ingress ${net.hostIf}@${net.hostNs}`));
    assert.match(table, new RegExp(`${perfId} .*\\[${child.pid}\\].*perf_event \\(no link\\) uprobe`));
  } finally {
    await child.stdin.close().catch(() => {});
    await child.status;
  }
});
