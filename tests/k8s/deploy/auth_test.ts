// The authenticated node API with real tokens on a real API server, with bpfd deployed by `deploy()`:
// a node runtime process serves TLS on 127.0.0.1 and checks callers with TokenReview + SubjectAccessReview
// (its own credentials: the bpfd-node ServiceAccount's token, so the manifests' RBAC is what is tested).
// Tokens must be bound to the node's audience (`bpfd.io/node/node-a`). No token, a garbage token, a forged
// JWT, an expired JWT, a token for the API server and an account without rights are refused and load
// nothing; an account granted only `get` on nodes/bpfd can list but not load; the controller's
// ServiceAccount token for this node loads, and `list` shows that identity with the program.
import assert from "node:assert/strict";
import { startKube } from "../../_kube.ts";
import { bytecodePath } from "../../_runtime.ts";
import { deploy } from "../../../deploy/deploy.ts";
import {
  makeNodeTls,
  nodeToken,
  resign,
  SecureRuntime,
  serviceAccountToken,
  strangerKey,
  tokenKubeconfig,
} from "./_secure.ts";

const loadInput = {
  bytecode: { path: bytecodePath("xdp_counter") },
  programs: [{ name: "xdp_counter", type: "xdp" }],
  metadata: { purpose: "auth-test" },
};

Deno.test("node API: TLS, TokenReview + SubjectAccessReview, refusals load nothing, the controller's token works", async () => {
  const kube = await startKube();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-auth-" });
  let rt: SecureRuntime | undefined;
  try {
    await deploy({ kc: kube.kubeConfig(), image: "registry.example/bpfd:test" });
    const tls = await makeNodeTls(dir);
    const runtimeToken = await serviceAccountToken(kube, "bpfd-node");
    const controllerToken = await nodeToken(kube, "bpfd-controller", "node-a");
    rt = await SecureRuntime.start(dir, tls, {
      mode: "kubernetes",
      kubeconfig: await tokenKubeconfig(kube, `${dir}/node.kubeconfig`, runtimeToken),
      nodeName: "node-a",
      cacheSeconds: 0,
    });
    const programs = async () => (await rt!.call("list", {}, controllerToken)).body.programs as unknown[];

    // Plain HTTP is not served on the TLS port.
    await assert.rejects(fetch(`http://127.0.0.1:${rt.port}/healthz`, { signal: AbortSignal.timeout(3000) }));
    // Probes need no token.
    const ready = await fetch(`${rt.url}/readyz`, { client: rt.client });
    assert.equal(ready.status, 200, await ready.text());

    // Every path but the probes is guarded, also ones no route serves.
    for (const path of ["/v1/functions", "//v1/functions/load", "/nope"]) {
      const r: Response = await fetch(`${rt.url}${path}`, { method: "POST", body: "{}", client: rt.client });
      await r.body?.cancel();
      assert.equal(r.status, 401, path);
    }

    // 401: no token, garbage, a JWT signed by a stranger, a real token re-signed as expired.
    const noToken = await rt.call("load", loadInput);
    assert.equal(noToken.status, 401);
    assert.equal(noToken.body.error.code, "unauthenticated");
    assert.equal((await rt.call("list", {}, "not-a-token")).status, 401);
    const forged = await resign(controllerToken, await strangerKey(dir), () => {});
    const forgedAnswer = await rt.call("load", loadInput, forged);
    assert.equal(forgedAnswer.status, 401, JSON.stringify(forgedAnswer.body));
    const saKey = await Deno.readTextFile(`${kube.dir}/sa.key`);
    const now = Math.floor(Date.now() / 1000);
    const expired = await resign(controllerToken, saKey, (c) => {
      c.iat = now - 7200;
      c.nbf = now - 7200;
      c.exp = now - 3600;
    });
    assert.equal((await rt.call("load", loadInput, expired)).status, 401);
    // The same re-signing with a valid lifetime is accepted: the refusal above is the expiry, not the signing.
    const fresh = await resign(controllerToken, saKey, (c) => {
      c.exp = now + 600;
    });
    assert.equal((await rt.call("list", {}, fresh)).status, 200);

    // 401: tokens for the API server, even the admin's, are not for this node.
    assert.equal((await rt.call("list", {}, kube.admin.token)).status, 401);
    assert.equal((await rt.call("list", {}, await serviceAccountToken(kube, "bpfd-controller"))).status, 401);

    // 403: alice is a real ServiceAccount without any binding, with a token for this node.
    const made = await kube.kubectl(["-n", "default", "create", "serviceaccount", "alice"]);
    assert.equal(made.code, 0, made.stderr);
    const alice = await nodeToken(kube, "alice", "node-a", "default");
    const aliceLoad = await rt.call("load", loadInput, alice);
    assert.equal(aliceLoad.status, 403);
    assert.equal(aliceLoad.body.error.code, "forbidden");
    assert.match(aliceLoad.body.error.message, /default:alice may not create nodes\/bpfd on node node-a/);
    assert.equal((await rt.call("list", {}, alice)).status, 403);
    assert.deepEqual(await programs(), [], "a refused call loaded something");

    // Granted `get` on nodes/bpfd (only node-a): alice lists, still cannot load.
    const role = JSON.stringify({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "bpfd-node-reader" },
      rules: [{ apiGroups: [""], resources: ["nodes/bpfd"], verbs: ["get"], resourceNames: ["node-a"] }],
    });
    assert.equal((await kube.kubectl(["apply", "-f", "-"], { stdin: role })).code, 0);
    const bound = await kube.kubectl(
      [
        "create",
        "clusterrolebinding",
        "alice-reader",
        "--clusterrole=bpfd-node-reader",
        "--serviceaccount=default:alice",
      ],
    );
    assert.equal(bound.code, 0, bound.stderr);
    assert.equal((await rt.call("list", {}, alice)).status, 200);
    assert.equal((await rt.call("load", loadInput, alice)).status, 403);
    assert.deepEqual(await programs(), []);

    // The controller's ServiceAccount token (the manifests' RBAC): loads; list shows who and why.
    const loaded = await rt.call("load", loadInput, controllerToken);
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
    const id = loaded.body.programs[0].id;
    const got = await rt.call("get", { programId: id }, alice);
    assert.equal(got.status, 200);
    assert.equal(got.body.program.loadedBy.user, "system:serviceaccount:bpfd:bpfd-controller");
    assert.match(got.body.program.loadedBy.via, /^tls token/);
    assert.equal(got.body.program.metadata.purpose, "auth-test");
    const log = await Deno.readTextFile(rt.logFile);
    assert.match(log, /call refused.*alice may not create/);
    assert.match(log, /"function":"load".*system:serviceaccount:bpfd:bpfd-controller/);
    assert.equal((await rt.call("unload", { programId: id }, controllerToken)).status, 200);
  } finally {
    await rt?.destroy(await nodeToken(kube, "bpfd-controller", "node-a").catch(() => undefined));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await kube.stop();
  }
});
