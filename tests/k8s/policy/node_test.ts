// BpfPolicy on the node, with real tokens on a real API server: a node runtime process (TLS, TokenReview +
// SubjectAccessReview) that watches the cluster's BpfPolicy with its own ServiceAccount. Calls the policy
// forbids get 403 naming the rule and the field and load or attach nothing; only the controller's
// identity may name a config's requester; a policy change and a deleted policy reach the node without a
// restart.
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { startKube, waitFor } from "../../_kube.ts";
import { bytecodePath } from "../../_runtime.ts";
import { deploy } from "../../../deploy/deploy.ts";
import {
  makeNodeTls,
  nodeToken,
  SecureRuntime,
  serviceAccountToken,
  tokenKubeconfig,
} from "../deploy/_secure.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const buildDir = bytecodePath("xdp_counter").replace(/\/[^/]+$/, "");

const policy = (rules: Json[]) => ({
  apiVersion: "bpfd.io/v1alpha1",
  kind: "BpfPolicy",
  metadata: { name: "node-test" },
  spec: { rules },
});
/** Callers are ServiceAccounts of namespace `team`: node API tokens are bound to the node's audience. */
const sa = (name: string) => ({ kind: "ServiceAccount", namespace: "team", name });
const aliceRule = {
  name: "alice-xdp",
  subjects: [sa("alice")],
  programTypes: ["XDP"],
  interfaces: ["eth0"],
  priority: { min: 100 },
  bytecodePaths: [buildDir],
};
const loadXdp = (type = "xdp", path = bytecodePath("xdp_counter")) => ({
  bytecode: { path },
  programs: [{ name: "xdp_counter", type }],
});

Deno.test("node: calls BpfPolicy forbids get 403 naming the rule and load nothing", async (t) => {
  const kube = await startKube();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-node-policy-" });
  let rt: SecureRuntime | undefined;
  let admin: string | undefined;
  try {
    const kc = kube.kubeConfig();
    await deploy({ kc, image: "registry.example/bpfd:test" });
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const bpfpolicies = { group: "bpfd.io", version: "v1alpha1", plural: "bpfpolicies" };
    await custom.deleteClusterCustomObject({ ...bpfpolicies, name: "bpfd-default" });
    await custom.createClusterCustomObject({ ...bpfpolicies, body: policy([aliceRule]) });
    // alice and bob may call the node API (RBAC); what they may load is the policy's business.
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await rbac.createClusterRole({
      body: {
        metadata: { name: "node-api" },
        rules: [{ apiGroups: [""], resources: ["nodes/bpfd"], verbs: ["get", "create"] }],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: "node-api" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "node-api" },
        subjects: ["alice", "bob"].map((name) => ({ kind: "ServiceAccount", name, namespace: "team" })),
      },
    });
    const nodeKubeconfig = await tokenKubeconfig(
      kube,
      `${dir}/node.kubeconfig`,
      await serviceAccountToken(kube, "bpfd-node"),
    );
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: "team" } } });
    for (const name of ["alice", "bob"]) {
      await core.createNamespacedServiceAccount({ namespace: "team", body: { metadata: { name } } });
    }
    const controller = await nodeToken(kube, "bpfd-controller", "node-a");
    admin = controller;
    rt = await SecureRuntime.start(
      dir,
      await makeNodeTls(dir),
      { mode: "kubernetes", kubeconfig: nodeKubeconfig, nodeName: "node-a", cacheSeconds: 0 },
      { config: { policy: { source: "kubernetes" } } },
    );
    const alice = await nodeToken(kube, "alice", "node-a", "team");
    const bob = await nodeToken(kube, "bob", "node-a", "team");
    const programs = async () => (await rt!.call("list", {}, admin)).body.programs as Json[];

    let programId = 0;
    await t.step("alice loads what her rule allows", async () => {
      const r = await rt!.call("load", loadXdp(), alice);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      programId = r.body.programs[0].id;
      assert.equal(r.body.programs[0].program.loadedBy.user, "system:serviceaccount:team:alice");
    });

    await t.step("refusals: 403 naming rule and field; nothing loaded or attached", async () => {
      const before = (await programs()).length;
      const low = await rt!.call("attach", {
        programId,
        attach: { type: "xdp", iface: "eth0", priority: 10 },
      }, alice);
      assert.equal(low.status, 403, JSON.stringify(low.body));
      assert.equal(low.body.error.code, "policy_denied");
      assert.equal(low.body.error.field, "attach.priority");
      assert.equal(low.body.error.rule, "node-test/alice-xdp");
      assert.match(low.body.error.message, /node-test\/alice-xdp.*attach\.priority 10/);
      const eth1 = await rt!.call("attach", {
        programId,
        attach: { type: "xdp", iface: "eth1", priority: 100 },
      }, alice);
      assert.equal(eth1.status, 403);
      assert.equal(eth1.body.error.field, "attach.iface");
      const kprobe = await rt!.call("load", loadXdp("kprobe"), alice);
      assert.equal(kprobe.status, 403);
      assert.equal(kprobe.body.error.field, "programs.0.type");
      await Deno.copyFile(bytecodePath("xdp_counter"), `${dir}/xdp_counter.bpf.o`);
      const outside = await rt!.call("load", loadXdp("xdp", `${dir}/xdp_counter.bpf.o`), alice);
      assert.equal(outside.status, 403);
      assert.equal(outside.body.error.field, "bytecode.path");
      // A symlink into the allowed directory does not help: the real path is checked.
      await Deno.symlink(`${dir}/xdp_counter.bpf.o`, `${buildDir}/.policy-test-link.o`).catch(() => {});
      try {
        const link = await rt!.call("load", loadXdp("xdp", `${buildDir}/.policy-test-link.o`), alice);
        assert.equal(link.status, 403);
      } finally {
        await Deno.remove(`${buildDir}/.policy-test-link.o`).catch(() => {});
      }
      const nobody = await rt!.call("load", loadXdp(), bob);
      assert.equal(nobody.status, 403);
      assert.match(nobody.body.error.message, /no BpfPolicy rule allows user system:serviceaccount:team:bob/);
      assert.equal((await programs()).length, before);
      assert.deepEqual((await programs()).find((p) => p.id === programId).links, []);
      const log = await Deno.readTextFile(rt!.logFile);
      assert.match(
        log,
        /"msg":"policy refused","user":"system:serviceaccount:team:alice".*"rule":"node-test\/alice-xdp","field":"attach\.priority"/,
      );
    });

    await t.step(
      "only the controller names a requester; its calls are checked for that requester",
      async () => {
        const spec = {
          name: "xdp_counter",
          type: "XDP",
          priority: 10,
          attachpoint: { interface: "eth0" },
          bytecode: { path: bytecodePath("xdp_counter") },
        };
        const input = {
          name: "c-node-a",
          config: "c",
          spec,
          requester: { user: "system:serviceaccount:team:alice", groups: [] },
        };
        const forged = await rt!.call("reconcile", {
          ...input,
          requester: { user: "admin", groups: ["bpfd-admins"] },
        }, alice);
        assert.equal(forged.status, 403);
        assert.match(forged.body.error.message, /team:alice may not act for another user/);
        const asAlice = await rt!.call("reconcile", input, controller);
        assert.equal(asAlice.status, 403, JSON.stringify(asAlice.body));
        assert.equal(asAlice.body.error.field, "spec.priority");
        assert.match(
          asAlice.body.error.message,
          /node-test\/alice-xdp.*user system:serviceaccount:team:alice/,
        );
        const { requester: _, ...anonymous } = input;
        const asController = await rt!.call("reconcile", anonymous, controller);
        assert.equal(asController.status, 403);
        assert.match(asController.body.error.message, /system:serviceaccount:bpfd:bpfd-controller/);
        assert.equal((await programs()).length, 1);
      },
    );

    await t.step("a policy change reaches the node without a restart", async () => {
      const cur = await custom.getClusterCustomObject({ ...bpfpolicies, name: "node-test" }) as Json;
      cur.spec.rules.push({
        name: "bob-xdp",
        subjects: [sa("bob")],
        programTypes: ["XDP"],
        bytecodePaths: [buildDir],
      });
      await custom.replaceClusterCustomObject({ ...bpfpolicies, name: "node-test", body: cur });
      const r = await waitFor(
        "bob allowed",
        async () => {
          const res = await rt!.call("load", loadXdp(), bob);
          return res.status === 200 ? res : undefined;
        },
        15000,
        300,
      );
      assert.equal(r.body.programs[0].program.loadedBy.user, "system:serviceaccount:team:bob");
    });

    await t.step("a deleted BpfPolicy stops allowing without a restart", async () => {
      await custom.deleteClusterCustomObject({ ...bpfpolicies, name: "node-test" });
      const refused = await waitFor(
        "bob refused",
        async () => {
          const res = await rt!.call("load", loadXdp(), bob);
          if (res.status !== 200) return res;
          await rt!.call("unload", { programId: res.body.programs[0].id }, admin);
        },
        15000,
        300,
      );
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.match(
        refused.body.error.message,
        /no BpfPolicy rule allows user system:serviceaccount:team:bob/,
      );
      const asAlice = await rt!.call("load", loadXdp(), alice);
      assert.equal(asAlice.status, 403, "alice's rule went with the policy");
      assert.match(await Deno.readTextFile(rt!.logFile), /"msg":"policy",.*"policies":\[\],"rules":0/);
    });
  } finally {
    await rt?.destroy(admin);
    await kube.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
