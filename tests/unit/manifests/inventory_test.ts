import assert from "node:assert/strict";
import { manifestDocuments } from "../../../manifests/manifests.ts";

Deno.test("manifests: the viewer reads inventories, the node writes its own and Events, the runtime config turns it on", () => {
  // deno-lint-ignore no-explicit-any
  const docs = manifestDocuments() as any[];
  const role = (name: string) => docs.find((d) => d.kind === "ClusterRole" && d.metadata.name === name);
  const viewer = role("bpfd-bpfprogram-viewer");
  assert.ok(
    viewer.rules.some((r: { resources: string[]; verbs: string[] }) =>
      r.resources.includes("bpfnodeinventories") && !r.verbs.includes("update")
    ),
  );
  assert.ok(role("bpfd-node-inventory").rules[0].verbs.includes("update"));
  assert.ok(docs.some((d) => d.kind === "Role" && d.metadata.name === "bpfd-node-events"));
  const config = docs.find((d) => d.kind === "ConfigMap" && d.data?.["node.json"]);
  assert.deepEqual(JSON.parse(config.data["node.json"]).inventory, {});
});
