// BpfPolicy in the controller, on a real API server with node runtimes as processes: a config admitted
// under one policy and forbidden by a newer one is reported (condition `PolicyAllowed` False, an Event
// naming the rule and the field), stays loaded where it is, and is not loaded on a node selected later.
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { waitFor } from "../../_kube.ts";
import { bytecodePath } from "../../_runtime.ts";
import { type Json, TestCluster } from "../_cluster.ts";

const buildDir = bytecodePath("xdp_counter").replace(/\/[^/]+$/, "");
const bpfpolicies = { group: "bpfd.io", version: "v1alpha1", plural: "bpfpolicies" };
const policy = (min: number) => ({
  apiVersion: "bpfd.io/v1alpha1",
  kind: "BpfPolicy",
  metadata: { name: "edge" },
  spec: {
    rules: [{
      name: "alice-xdp",
      subjects: [{ kind: "User", name: "alice" }],
      programTypes: ["XDP"],
      interfaces: ["eth0"],
      priority: { min },
      bytecodePaths: [buildDir],
    }],
  },
});
const cond = (o: Json, type: string) => o?.status?.conditions?.find((c: Json) => c.type === type);

Deno.test("controller: a config a newer policy forbids is reported and not loaded on new nodes", async (t) => {
  const cluster = await TestCluster.start({
    nodes: [{ name: "node-a", labels: { pool: "edge" } }, { name: "node-b" }],
    settings: { "bpfd.resync.seconds": "2" },
  });
  try {
    await cluster.custom.createClusterCustomObject({ ...bpfpolicies, body: policy(100) });
    await cluster.startController("ctl", ["--policy"]);
    const config = {
      apiVersion: "bpfd.io/v1alpha1",
      kind: "BpfProgramConfig",
      metadata: {
        name: "edge-xdp",
        // As the admission webhook stamps it (this cluster has no webhook registered).
        annotations: {
          "bpfd.io/requested-by": JSON.stringify({ user: "alice", groups: ["system:authenticated"] }),
        },
      },
      spec: {
        name: "xdp_counter",
        type: "XDP",
        nodeselector: { matchLabels: { pool: "edge" } },
        priority: 150,
        attachpoint: { interface: "eth0" },
        bytecode: { path: bytecodePath("xdp_counter") },
      },
    };
    await cluster.custom.createClusterCustomObject({
      group: "bpfd.io",
      version: "v1alpha1",
      plural: "bpfprogramconfigs",
      body: config,
    });

    await t.step("allowed: loaded on the selected node, PolicyAllowed True", async () => {
      const cfg = await waitFor("loaded on node-a", async () => {
        const c = await cluster.config("edge-xdp");
        return c?.status?.nodes?.loaded === 1 && cond(c, "PolicyAllowed") ? c : undefined;
      }, 60000);
      assert.equal(cond(cfg, "PolicyAllowed").status, "True");
      assert.match(cond(cfg, "PolicyAllowed").message, /edge\/alice-xdp/);
      const progs = await cluster.runtimes.get("node-a")!.programs();
      assert.equal(progs.length, 1);
    });

    await t.step("a newer policy forbids it: reported, still loaded where it was", async () => {
      const cur = await cluster.custom.getClusterCustomObject({ ...bpfpolicies, name: "edge" }) as Json;
      await cluster.custom.replaceClusterCustomObject({
        ...bpfpolicies,
        name: "edge",
        body: { ...policy(200), metadata: { name: "edge", resourceVersion: cur.metadata.resourceVersion } },
      });
      const cfg = await waitFor("PolicyAllowed False", async () => {
        const c = await cluster.config("edge-xdp");
        return cond(c, "PolicyAllowed")?.status === "False" ? c : undefined;
      }, 30000);
      assert.equal(cond(cfg, "PolicyAllowed").reason, "PolicyDenied");
      assert.match(cond(cfg, "PolicyAllowed").message, /edge\/alice-xdp.*spec\.priority 150.*user alice/);
      const events = await cluster.core.listNamespacedEvent({ namespace: "default" });
      assert.ok(
        events.items.some((e: k8s.CoreV1Event) =>
          e.reason === "PolicyDenied" && e.involvedObject.name === "edge-xdp" &&
          /spec\.priority/.test(e.message ?? "")
        ),
        "an Event on the config",
      );
      assert.equal((await cluster.runtimes.get("node-a")!.programs()).length, 1, "what is loaded stays");
    });

    await t.step("a node selected now does not get it", async () => {
      await cluster.core.patchNode(
        { name: "node-b", body: { metadata: { labels: { pool: "edge" } } } },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      );
      const bp = await waitFor("node-b refused", async () => {
        const [b] = (await cluster.bpfPrograms("edge-xdp")).filter((x: Json) => x.spec.node === "node-b");
        return cond(b, "Loaded")?.status === "False" ? b : undefined;
      }, 30000);
      assert.match(cond(bp, "Loaded").message, /not loaded: BpfPolicy rule edge\/alice-xdp/);
      assert.equal((await cluster.runtimes.get("node-b")!.programs()).length, 0);
      assert.equal((await cluster.runtimes.get("node-a")!.programs()).length, 1);
      const log = await Deno.readTextFile(`${cluster.dir}/controller-ctl.log`);
      assert.match(
        log,
        /"msg":"policy refused".*"config":"edge-xdp","user":"alice".*"rule":"edge\/alice-xdp","field":"spec\.priority"/,
      );
    });

    await t.step("deleting the config unloads it (unloading is never refused)", async () => {
      await cluster.custom.deleteClusterCustomObject({
        group: "bpfd.io",
        version: "v1alpha1",
        plural: "bpfprogramconfigs",
        name: "edge-xdp",
      });
      await waitFor("config gone", async () => !(await cluster.config("edge-xdp")), 30000);
      assert.equal((await cluster.runtimes.get("node-a")!.programs()).length, 0);
    });
  } catch (err) {
    console.error(await cluster.logs(30));
    throw err;
  } finally {
    await cluster.stop();
  }
});
