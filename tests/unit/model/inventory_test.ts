import assert from "node:assert/strict";
import { describeAttachment, type InventoryProgram, ownerOf, summarize } from "../../../model/inventory.ts";

const p = (over: Partial<InventoryProgram>): InventoryProgram => ({
  id: 1,
  name: "p",
  type: "xdp",
  tag: "",
  loadedAt: "",
  uid: 0,
  managed: false,
  mapIds: [],
  attachments: [],
  ...over,
});

Deno.test("inventory summary: managed/unmanaged per type for the printer columns", () => {
  assert.deepEqual(
    summarize([p({ managed: true }), p({}), p({ type: "sched_cls" }), p({ type: "sched_cls" })]),
    { programs: 4, managed: 1, unmanaged: 3, types: { sched_cls: "0/2", xdp: "1/1" } },
  );
});

Deno.test("inventory owner: the config for bpfd's programs, holders with pods for others, else the uid", () => {
  assert.equal(
    ownerOf(p({ owner: { config: "c", loadedBy: "sa", via: "tls", bytecode: "/x.o", metadata: {} } })),
    "config c (sa)",
  );
  assert.equal(
    ownerOf(p({ holders: [{ pid: 7, comm: "cilium", pod: "kube-system/cilium-x" }] })),
    "cilium[7] pod kube-system/cilium-x",
  );
  assert.equal(ownerOf(p({ uid: 1000 })), "uid 1000");
  assert.equal(
    describeAttachment({ kind: "tcx", attachType: "tcx_ingress", iface: "eth0", linkId: 4 }),
    "tcx tcx_ingress eth0 link 4",
  );
});
