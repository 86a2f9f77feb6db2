import assert from "node:assert/strict";
import { clusterRows, isClusterCommand } from "../../../cli/cluster.ts";
import { type InventoryProgram, summarize } from "../../../model/inventory.ts";

Deno.test("cli cluster: --cluster/--node select the cluster commands; rows per node, filtered, omitted counted", () => {
  assert.ok(isClusterCommand(["list", "--cluster"]));
  assert.ok(isClusterCommand(["get", "--node=a", "1"]));
  assert.ok(!isClusterCommand(["list", "--all"]));
  const prog = (id: number, type: string): InventoryProgram => ({
    id,
    name: `p${id}`,
    type,
    tag: "",
    loadedAt: "",
    uid: 0,
    managed: false,
    mapIds: [],
    attachments: [{ kind: "xdp", iface: "eth0", linkId: 3 }],
  });
  const programs = [prog(1, "xdp"), prog(2, "kprobe")];
  const inv = {
    metadata: { name: "a" },
    spec: { node: "a", observedAt: "", summary: summarize(programs), programs, hooks: [], omitted: 5 },
  };
  const rows = clusterRows([inv], { type: "xdp" });
  assert.deepEqual(rows[0], ["a", "1", "p1", "xdp", "no", "xdp eth0 link 3", "uid 0"]);
  assert.equal(rows.length, 2);
  assert.match(rows[1][2], /5 more not listed/);
});
