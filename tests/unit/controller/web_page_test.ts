import assert from "node:assert/strict";
import { inventoryPage, matches } from "../../../controller/web_page.ts";
import { type InventoryProgram, summarize } from "../../../model/inventory.ts";

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

Deno.test("inventory page: filters by type, holders' namespace and config; names are escaped", async () => {
  const held = p({ id: 2, type: "kprobe", holders: [{ pid: 1, comm: "x", pod: "team-a/agent" }] });
  const owned = p({ id: 3, owner: { config: "cfg", loadedBy: "u", via: "v", bytecode: "b", metadata: {} } });
  assert.ok(matches(held, { type: "kprobe", namespace: "team-a" }));
  assert.ok(!matches(held, { namespace: "team-b" }));
  assert.ok(matches(owned, { config: "cfg" }) && !matches(held, { config: "cfg" }));
  const programs = [p({ name: "<script>alert(1)</script>" }), held, owned];
  const page = String(
    await inventoryPage({
      inventories: [{
        name: "n1",
        spec: { node: "n1", observedAt: "", summary: summarize(programs), programs, hooks: [], omitted: 2 },
      }],
      configs: [{ name: "cfg", type: "XDP", program: "p", selected: 1, loaded: 1, failing: 0 }],
      programs: [{
        name: "cfg-n1",
        node: "n1",
        config: "cfg",
        loaded: "True",
        reason: "bpfdLoaded",
        message: "",
      }],
      filter: { config: "cfg" },
      user: "bob",
    }),
  );
  assert.doesNotMatch(page, /<script>alert/);
  assert.match(page, /Config cfg per node/);
  assert.match(page, /2 programs not listed/);
  assert.equal([...page.matchAll(/data-node="n1"/g)].length, 1, "only the config's program");
});
