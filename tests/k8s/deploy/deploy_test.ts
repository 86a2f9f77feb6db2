// `deno task deploy` / `undeploy` on a real kube-apiserver: every object is created and passes the API
// server's validation (DaemonSet, Deployment, RBAC), a second run changes nothing, the seed's ClusterRoles
// work with real user tokens, and undeploy removes what deploy made (users' configs only with --all).
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { startKube } from "../../_kube.ts";
import { manifestDocuments } from "../../../manifests/manifests.ts";
import { manifestsYaml } from "../../../manifests/generate.ts";
import { certificateFacts } from "../../../lib/pki.ts";
import { crdDocuments } from "../../../crds/crds.ts";
import { removeWebhooks } from "../policy/_policy.ts";

/** What deploy applies beyond the manifests: the CRDs, the node CA, the webhook's Secret and registrations. */
const EXTRA = crdDocuments().length + 4;

const root = new URL("../../..", import.meta.url).pathname;

async function deployCli(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}deploy/deploy.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const config = (name: string) => ({
  apiVersion: "bpfd.io/v1alpha1",
  kind: "BpfProgramConfig",
  metadata: { name },
  spec: {
    name: "pass",
    type: "XDP",
    nodeselector: {},
    priority: 0,
    attachpoint: { interface: "eth0" },
    bytecode: { imageurl: "quay.io/bpfd-bytecode/xdp_pass:latest" },
  },
});

Deno.test("manifests/bpfd.yaml is what manifests/manifests.ts generates", async () => {
  assert.equal(await Deno.readTextFile(`${root}manifests/bpfd.yaml`), manifestsYaml());
});

Deno.test("deploy --dry-run prints the CRDs and manifests with the image given, touching no cluster", async () => {
  const r = await deployCli(
    "deploy",
    "--dry-run",
    "--image",
    "registry.example/bpfd:v9",
    "--kubeconfig",
    "/nope",
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /kind: CustomResourceDefinition/);
  assert.match(r.stdout, /kind: DaemonSet/);
  assert.equal(r.stdout.match(/image: "?registry\.example\/bpfd:v9/g)?.length, 2);
  const bad = await deployCli("deploy", "--dry-run", "--replicas", "0");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--replicas: must be a positive integer/);
});

Deno.test("deploy creates everything, is idempotent, RBAC roles work, undeploy removes it", async () => {
  const kube = await startKube();
  try {
    const kcFile = kube.kubeconfig();
    const addNode = async (name: string, ip: string) => {
      const core = kube.kubeConfig().makeApiClient(k8s.CoreV1Api);
      await core.createNode({ body: { metadata: { name } } });
      await core.replaceNodeStatus({
        name,
        body: { metadata: { name }, status: { addresses: [{ type: "InternalIP", address: ip }] } },
      });
    };
    await addNode("n1", "10.9.0.1");
    // 1. First run: everything created.
    const first = await deployCli("deploy", "--kubeconfig", kcFile, "--image", "registry.example/bpfd:t1");
    assert.equal(first.code, 0, first.stderr + first.stdout);
    const docs = manifestDocuments();
    assert.match(first.stdout, new RegExp(`${docs.length + EXTRA} created, 0 configured, 0 unchanged`));
    assert.match(first.stdout, /secret\/bpfd-node-ca \(bpfd\) created/);
    assert.match(first.stdout, /daemonset\/bpfd-node \(bpfd\) created/);

    // The objects are there, as the server validated and defaulted them.
    const ds = JSON.parse(
      (await kube.kubectl(["-n", "bpfd", "get", "daemonset", "bpfd-node", "-o", "json"])).stdout,
    );
    const c = ds.spec.template.spec.containers[0];
    assert.equal(c.image, "registry.example/bpfd:t1");
    assert.equal(c.securityContext.privileged, true);
    assert.equal(ds.spec.template.spec.hostNetwork, true);
    assert.equal(c.readinessProbe.httpGet.path, "/readyz");
    assert.deepEqual(
      c.volumeMounts.find((m: { mountPath: string }) => m.mountPath === "/run/bpfd").mountPropagation,
      "Bidirectional",
    );
    assert.equal(
      c.volumeMounts.find((m: { mountPath: string }) => m.mountPath === "/sys").mountPropagation,
      "HostToContainer",
    );
    assert.deepEqual(c.resources.limits, { memory: "1280Mi", "ephemeral-storage": "1Gi" });
    // The node CA Secret (the controller signs each runtime's own certificate with it), its hash on the
    // pod templates; the runtimes get no Secret, a pod-bound token and a key of their own in memory.
    const secret = JSON.parse(
      (await kube.kubectl(["-n", "bpfd", "get", "secret", "bpfd-node-ca", "-o", "json"])).stdout,
    );
    assert.deepEqual(Object.keys(secret.data).sort(), ["ca.crt", "ca.key"]);
    const facts = await certificateFacts(atob(secret.data["ca.crt"]));
    assert.ok(facts.notAfter > Date.now() + 5 * 365 * 86400_000);
    const hash1 = ds.spec.template.metadata.annotations["bpfd.io/node-tls-hash"];
    assert.match(hash1, /^[0-9a-f]{16}$/);
    assert.equal(ds.spec.template.spec.automountServiceAccountToken, false);
    const vols = ds.spec.template.spec.volumes as Array<
      { name: string; secret?: unknown; emptyDir?: unknown }
    >;
    assert.ok(vols.every((v) => !v.secret), "the node runtimes mount no Secret");
    assert.equal((vols.find((v) => v.name === "tls")?.emptyDir as { medium: string }).medium, "Memory");
    // The pod the DaemonSet would make passes the API server's pod validation and admission (dry run).
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "bpfd-node-dry", namespace: "bpfd" },
      // No kube-controller-manager here makes ServiceAccount token Secrets, which the ServiceAccount
      // admission plugin would wait for: the dry-run pod mounts no token.
      spec: { ...ds.spec.template.spec, nodeName: "n1", automountServiceAccountToken: false },
    };
    const dry = await kube.kubectl(["create", "--dry-run=server", "-f", "-"], { stdin: JSON.stringify(pod) });
    assert.equal(dry.code, 0, dry.stderr);
    const dep = JSON.parse(
      (await kube.kubectl(["-n", "bpfd", "get", "deployment", "bpfd-controller", "-o", "json"])).stdout,
    );
    assert.equal(dep.spec.replicas, 2);
    assert.equal(dep.spec.template.spec.serviceAccountName, "bpfd-controller");
    const ctlPod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "bpfd-controller-dry", namespace: "bpfd" },
      spec: { ...dep.spec.template.spec, automountServiceAccountToken: false },
    };
    const dry2 = await kube.kubectl(["create", "--dry-run=server", "-f", "-"], {
      stdin: JSON.stringify(ctlPod),
    });
    assert.equal(dry2.code, 0, dry2.stderr);
    for (const crd of ["bpfprogramconfigs.bpfd.io", "bpfprograms.bpfd.io"]) {
      const r = await kube.kubectl([
        "get",
        "crd",
        crd,
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Established')].status}",
      ]);
      assert.equal(r.stdout, "True");
    }
    const cm = await kube.kubectl([
      "-n",
      "bpfd",
      "get",
      "configmap",
      "bpfd-config",
      "-o",
      "jsonpath={.data}",
    ]);
    assert.match(cm.stdout, /bpfd\.node\.port/);
    const viewer = JSON.parse(
      (await kube.kubectl(["get", "clusterrole", "bpfd-bpfprogram-viewer", "-o", "json"])).stdout,
    );
    assert.equal(viewer.metadata.labels["rbac.authorization.k8s.io/aggregate-to-view"], "true");
    const editor = JSON.parse(
      (await kube.kubectl(["get", "clusterrole", "bpfd-bpfprogramconfig-editor", "-o", "json"])).stdout,
    );
    assert.equal(editor.metadata.labels["rbac.authorization.k8s.io/aggregate-to-edit"], undefined);
    assert.equal(editor.metadata.labels["rbac.authorization.k8s.io/aggregate-to-admin"], undefined);

    // 2. Second run: nothing changes.
    const second = await deployCli("deploy", "--kubeconfig", kcFile, "--image", "registry.example/bpfd:t1");
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, new RegExp(`0 created, 0 configured, ${docs.length + EXTRA} unchanged`));
    // A new image: only the two workloads change.
    const third = await deployCli("deploy", "--kubeconfig", kcFile, "--image", "registry.example/bpfd:t2");
    assert.equal(third.code, 0, third.stderr);
    assert.match(third.stdout, new RegExp(`0 created, 2 configured, ${docs.length + EXTRA - 2} unchanged`));
    assert.match(third.stdout, /deployment\/bpfd-controller \(bpfd\) configured/);
    // A new node changes nothing: its runtime asks for its own certificate.
    await addNode("n2", "10.9.0.2");
    const fourth = await deployCli("deploy", "--kubeconfig", kcFile, "--image", "registry.example/bpfd:t2");
    assert.equal(fourth.code, 0, fourth.stderr);
    assert.match(fourth.stdout, new RegExp(`0 created, 0 configured, ${docs.length + EXTRA} unchanged`));

    // 3. The seed's roles with real tokens: alice views, bob edits, carol has nothing.
    const bindTo = (user: string, role: string) =>
      kube.kubectl([
        "create",
        "clusterrolebinding",
        `${user}-${role}`,
        `--clusterrole=${role}`,
        `--user=${user}`,
      ]);
    assert.equal((await bindTo("alice", "bpfd-bpfprogram-viewer")).code, 0);
    assert.equal((await bindTo("bob", "bpfd-bpfprogramconfig-editor")).code, 0);
    const cfgYaml = JSON.stringify(config("by-bob"));
    await removeWebhooks(kube); // no controller answers them here; tests/k8s/policy/ covers admission
    const asAlice = await kube.kubectl(["get", "bpfprograms"], { user: "alice" });
    assert.equal(asAlice.code, 0, asAlice.stderr);
    const aliceCreate = await kube.kubectl(["create", "-f", "-"], { user: "alice", stdin: cfgYaml });
    assert.notEqual(aliceCreate.code, 0);
    assert.match(aliceCreate.stderr, /forbidden/i);
    const aliceCan = await kube.kubectl(["auth", "can-i", "create", "bpfprogramconfigs.bpfd.io"], {
      user: "alice",
    });
    assert.equal(aliceCan.stdout.trim(), "no");
    const bobCreate = await kube.kubectl(["create", "-f", "-"], { user: "bob", stdin: cfgYaml });
    assert.equal(bobCreate.code, 0, bobCreate.stderr);
    const bobBp = await kube.kubectl(["auth", "can-i", "create", "bpfprograms.bpfd.io"], { user: "bob" });
    assert.equal(bobBp.stdout.trim(), "no", "editors cannot write BpfPrograms: they are the controller's");
    const carol = await kube.kubectl(["get", "bpfprograms"], { user: "carol" });
    assert.notEqual(carol.code, 0);
    assert.match(carol.stderr, /forbidden/i);

    // 4. undeploy keeps the CRDs and users' configs; undeploy --all removes those too.
    const un = await deployCli("undeploy", "--kubeconfig", kcFile);
    assert.equal(un.code, 0, un.stderr);
    assert.match(un.stdout, /daemonset\/bpfd-node \(bpfd\) deleted/);
    assert.match(un.stdout, /secret\/bpfd-node-ca \(bpfd\) deleted/);
    for (const [kind, name] of [["daemonset", "bpfd-node"], ["deployment", "bpfd-controller"]]) {
      const r = await kube.kubectl(["-n", "bpfd", "get", kind, name]);
      assert.match(r.stderr, /NotFound/);
    }
    const roles = await kube.kubectl(["get", "clusterrole", "bpfd-bpfprogram-viewer"]);
    assert.match(roles.stderr, /NotFound/);
    assert.equal(
      (await kube.kubectl(["get", "bpfprogramconfig", "by-bob"])).code,
      0,
      "the user's config stays",
    );

    const all = await deployCli("undeploy", "--kubeconfig", kcFile, "--all", "--timeout", "1");
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /bpfprogramconfig\/by-bob deleted/);
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kcFile);
    const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
    for (const name of ["bpfprogramconfigs.bpfd.io", "bpfprograms.bpfd.io"]) {
      // Gone, or going (no controller-manager finalizes CRDs here: terminating is what the server can do).
      const crd = await ext.readCustomResourceDefinition({ name }).catch((e) =>
        e.code === 404 ? null : Promise.reject(e)
      );
      assert.ok(
        crd === null || crd.metadata?.deletionTimestamp,
        `CRD ${name} neither deleted nor terminating`,
      );
    }
    // No namespace controller runs here: the namespace is terminating, not gone.
    const nsObj = JSON.parse(
      (await kube.kubectl(["get", "namespace", "bpfd", "-o", "json"])).stdout || "null",
    );
    assert.ok(nsObj === null || nsObj.metadata.deletionTimestamp, "namespace bpfd not deleted");
  } finally {
    await kube.stop();
  }
});
