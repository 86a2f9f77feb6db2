// `bpfd trace --node` against a real API server and a node runtime with TLS and Kubernetes authentication,
// bpfd deployed by `deploy()` (so the manifests' RBAC is what is tested): a ServiceAccount bound to
// `bpfd-tracer` traces through the CLI (the node found with the kubeconfig, a TokenRequest for the node's
// audience, the node CA checked); the controller's token (get + create on nodes/bpfd, not trace) is refused
// with 403; the runtime records an Event on the Node for the session.
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { startKube } from "../../_kube.ts";
import { deploy } from "../../../deploy/deploy.ts";
import { makeNodeTls, nodeToken, SecureRuntime, serviceAccountToken, tokenKubeconfig } from "./_secure.ts";

const cli = new URL("../../../cli/main.ts", import.meta.url).pathname;

Deno.test("bpfd trace --node: bpfd-tracer may trace, the controller may not; the Node gets an Event", async () => {
  const kube = await startKube();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-trace-k8s-" });
  let rt: SecureRuntime | undefined;
  try {
    await deploy({ kc: kube.kubeConfig(), image: "registry.example/bpfd:test" });
    const core = kube.kubeConfig().makeApiClient(k8s.CoreV1Api);
    const rbac = kube.kubeConfig().makeApiClient(k8s.RbacAuthorizationV1Api);
    await core.createNode({ body: { metadata: { name: "node-a", labels: { "bpfd.io/test": "trace" } } } });
    await core.replaceNodeStatus({
      name: "node-a",
      body: {
        ...await core.readNode({ name: "node-a" }),
        status: { addresses: [{ type: "InternalIP", address: "127.0.0.1" }] },
      },
    });
    await core.createNamespace({ body: { metadata: { name: "dbg" } } });
    await core.createNamespacedServiceAccount({ namespace: "dbg", body: { metadata: { name: "tracer" } } });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: "dbg-tracer" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "bpfd-tracer" },
        subjects: [{ kind: "ServiceAccount", name: "tracer", namespace: "dbg" }],
      },
    });

    const tls = await makeNodeTls(dir);
    const runtimeToken = await serviceAccountToken(kube, "bpfd-node");
    rt = await SecureRuntime.start(dir, tls, {
      mode: "kubernetes",
      kubeconfig: await tokenKubeconfig(kube, `${dir}/node.kubeconfig`, runtimeToken),
      nodeName: "node-a",
      cacheSeconds: 0,
    });

    const trace = async (...args: string[]) => {
      const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", cli, "trace", "--node-ca", tls.ca, "--port", String(rt!.port), ...args],
        env: { KUBECONFIG: kube.kubeconfig() },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code, out: new TextDecoder().decode(stdout), err: new TextDecoder().decode(stderr) };
    };
    const script = 'BEGIN { printf("hello from node-a\\n"); @answer = 42; exit(); }';
    const ok = await trace("--node", "node-a", "--service-account", "dbg/tracer", "-e", script);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /^hello from node-a$/m);
    assert.match(ok.out, /^@answer: 42$/m);
    // Several nodes (by label): lines are prefixed with the node.
    const fanned = await trace(
      "--nodes",
      "bpfd.io/test=trace",
      "--service-account",
      "dbg/tracer",
      "-e",
      script,
    );
    assert.equal(fanned.code, 0, fanned.err);
    assert.match(fanned.out, /^\[node-a\] hello from node-a$/m);

    // The controller may load programs on this node, but not trace.
    const controllerToken = await nodeToken(kube, "bpfd-controller", "node-a");
    const tokenFile = `${dir}/controller.token`;
    await Deno.writeTextFile(tokenFile, controllerToken);
    const refused = await trace("--node", "node-a", "--token-file", tokenFile, "-e", script);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /may not trace nodes\/bpfd on node node-a/);

    // The runtime wrote Events on the Node (its bpfd-node ServiceAccount may, in `default`).
    let reasons: string[] = [];
    for (let i = 0; i < 50 && !reasons.includes("TraceSessionEnded"); i++) {
      const events = await core.listNamespacedEvent({
        namespace: "default",
        fieldSelector: "involvedObject.kind=Node,involvedObject.name=node-a",
      });
      reasons = events.items.map((e) => e.reason ?? "");
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(reasons.includes("TraceSessionStarted"), reasons.join(","));
    assert.ok(reasons.includes("TraceSessionEnded"), reasons.join(","));
    const log = await Deno.readTextFile(rt.logFile);
    assert.match(log, /"trace session started".*system:serviceaccount:dbg:tracer.*hello from node-a/);
  } finally {
    await rt?.destroy(await nodeToken(kube, "bpfd-controller", "node-a").catch(() => undefined));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await kube.stop();
  }
});
