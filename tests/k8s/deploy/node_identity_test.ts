// Per-node credentials on a real API server, with bpfd deployed by `deploy()`: two node runtimes (node-a on
// 127.0.0.2, node-b on 127.0.0.3) each make their own key and get a certificate for their own node only
// through the CSR API (signed by the controller's signer, checked against the pod their token is bound
// to); a token the controller sent to node A is refused by node B; a request for another node's name is
// denied. The API server's audit log counts the TokenReviews: 1,000 bad tokens cost one review each,
// again within 10 s none, the same bad token 1,000 times one; the SubjectAccessReview carries `extra`.
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { startKube, waitFor } from "../../_kube.ts";
import { deploy } from "../../../deploy/deploy.ts";
import { NodeSigner } from "../../../controller/signer.ts";
import { NodeTokens } from "../../../controller/node_tokens.ts";
import { certificateFacts, keyAndRequest, openssl } from "../../../lib/pki.ts";
import { Logger } from "../../../lib/log.ts";
import { NODE_SIGNER_NAME } from "../../../model/names.ts";
import { type Json, SecureRuntime, serviceAccountToken, tokenKubeconfig } from "./_secure.ts";

const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Request
  resources:
  - group: authentication.k8s.io
    resources: ["tokenreviews"]
  - group: authorization.k8s.io
    resources: ["subjectaccessreviews"]
- level: None
`;

const NODES = { "node-a": "127.0.0.2", "node-b": "127.0.0.3" } as const;
type NodeName = keyof typeof NODES;

/** The audit events of `resource` made by the node runtimes' ServiceAccount. */
async function audited(file: string, resource: string): Promise<Json[]> {
  const text = await Deno.readTextFile(file).catch(() => "");
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l)).filter((e) =>
    e.objectRef?.resource === resource && e.user?.username === "system:serviceaccount:bpfd:bpfd-node" &&
    e.stage === "ResponseComplete"
  );
}

Deno.test("per-node credentials: own key and certificate per node, node-bound tokens, cached refusals", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-nodeid-" });
  await Deno.writeTextFile(`${dir}/audit.yaml`, AUDIT_POLICY);
  const auditLog = `${dir}/audit.log`;
  const kube = await startKube({
    apiserverArgs: [`--audit-policy-file=${dir}/audit.yaml`, `--audit-log-path=${auditLog}`],
  });
  const runtimes: Partial<Record<NodeName, SecureRuntime>> = {};
  let signer: NodeSigner | undefined;
  const log = new Logger("warn");
  try {
    const kc = kube.kubeConfig();
    await deploy({ kc, image: "registry.example/bpfd:test" });
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const secret = await core.readNamespacedSecret({ name: "bpfd-node-ca", namespace: "bpfd" });
    const ca = { cert: atob(secret.data!["ca.crt"]), key: atob(secret.data!["ca.key"]) };
    await Deno.writeTextFile(`${dir}/ca.crt`, ca.cert);
    signer = new NodeSigner(kc, { ca, namespace: "bpfd", log, periodMs: 200 });
    signer.start();

    // Two Nodes with their addresses, and a node runtime pod on each (no kubelet here: the pods only
    // exist, which is what a pod-bound token and the signer look at).
    for (const [node, ip] of Object.entries(NODES)) {
      await core.createNode({ body: { metadata: { name: node } } });
      const created = await core.readNode({ name: node });
      await core.replaceNodeStatus({
        name: node,
        body: { ...created, status: { addresses: [{ type: "InternalIP", address: ip }] } },
      });
      await core.createNamespacedPod({
        namespace: "bpfd",
        body: {
          metadata: { name: `bpfd-${node}` },
          spec: {
            nodeName: node,
            serviceAccountName: "bpfd-node",
            automountServiceAccountToken: false,
            containers: [{ name: "runtime", image: "registry.example/bpfd:test" }],
          },
        },
      });
    }
    for (const [node, ip] of Object.entries(NODES) as [NodeName, string][]) {
      const ndir = `${dir}/${node}`;
      await Deno.mkdir(ndir);
      const token = await serviceAccountToken(kube, "bpfd-node", { pod: `bpfd-${node}` });
      runtimes[node] = await SecureRuntime.start(
        ndir,
        { ca: `${dir}/ca.crt`, cert: `${ndir}/tls.crt`, key: `${ndir}/tls.key` },
        {
          mode: "kubernetes",
          kubeconfig: await tokenKubeconfig(kube, `${ndir}/node.kubeconfig`, token),
          nodeName: node,
          cacheSeconds: 0,
        },
        { host: ip, request: true },
      );
    }
    const a = runtimes["node-a"]!, b = runtimes["node-b"]!;

    // Each runtime serves its own certificate: for its own node's address and name only.
    const certA = await Deno.readTextFile(`${a.dir}/tls.crt`),
      certB = await Deno.readTextFile(`${b.dir}/tls.crt`);
    assert.deepEqual([...(await certificateFacts(certA)).sans].sort(), ["127.0.0.2", "node-a"]);
    assert.deepEqual([...(await certificateFacts(certB)).sans].sort(), ["127.0.0.3", "node-b"]);
    // Node A's key is not the key of node B's certificate.
    const pubKeyA = await openssl(["pkey", "-pubout", "-in", `${a.dir}/tls.key`]);
    assert.notEqual(pubKeyA, await openssl(["x509", "-noout", "-pubkey"], certB));
    assert.equal(pubKeyA, await openssl(["x509", "-noout", "-pubkey"], certA));
    // What node A holds does not pass for node B: served at B's address, A's certificate is refused.
    const impostor = Deno.serve({
      hostname: NODES["node-b"],
      port: 0,
      cert: certA,
      key: await Deno.readTextFile(`${a.dir}/tls.key`),
      onListen: () => {},
    }, () => new Response("impostor"));
    try {
      const port = (impostor.addr as Deno.NetAddr).port;
      await assert.rejects(fetch(`https://${NODES["node-b"]}:${port}/`, { client: b.client }));
    } finally {
      await impostor.shutdown();
    }

    // Node A's credentials cannot get a certificate for node B: the request is denied.
    const aKc = new k8s.KubeConfig();
    aKc.loadFromFile(`${a.dir}/node.kubeconfig`);
    const { csr } = await keyAndRequest("system:bpfd:node:node-b");
    const made = await aKc.makeApiClient(k8s.CertificatesV1Api).createCertificateSigningRequest({
      body: {
        metadata: { generateName: "steal-" },
        spec: {
          request: btoa(csr),
          signerName: NODE_SIGNER_NAME,
          usages: ["digital signature", "server auth"],
        },
      },
    });
    const certs = kc.makeApiClient(k8s.CertificatesV1Api);
    const denied = await waitFor("the request for node-b denied", async () => {
      const cur = await certs.readCertificateSigningRequest({ name: made.metadata!.name! });
      return cur.status?.conditions?.find((c) => c.type === "Denied");
    }, 20000);
    assert.match(denied.message!, /names system:bpfd:node:node-b, the pod runs on node-a/);

    // The controller's tokens (TokenRequest, one audience per node): A's works on A, replayed to B → 401.
    const tokens = new NodeTokens(kc, { namespace: "bpfd", serviceAccount: "bpfd-controller" });
    const forA = await tokens.token("node-a");
    assert.equal(await tokens.token("node-a"), forA, "the token is reused until it is due");
    assert.equal((await a.call("list", {}, forA)).status, 200);
    const replayed = await b.call("list", {}, forA);
    assert.equal(replayed.status, 401, JSON.stringify(replayed.body));
    assert.match(replayed.body.error.message, /not valid for bpfd\.io\/node\/node-b/);
    assert.equal((await b.call("list", {}, await tokens.token("node-b"))).status, 200);
    // A token for the API server (not bound to a node) is refused too.
    assert.equal((await a.call("list", {}, await serviceAccountToken(kube, "bpfd-controller"))).status, 401);
    assert.equal((await a.call("list", {}, kube.admin.token)).status, 401);

    // The SubjectAccessReview carries the caller's extra: a pod-bound token's pod name reaches it.
    const podBound = await serviceAccountToken(kube, "bpfd-node", {
      pod: "bpfd-node-a",
      audience: "bpfd.io/node/node-a",
    });
    assert.equal((await a.call("load", {}, podBound)).status, 403);
    const sar = await waitFor(
      "the SubjectAccessReview audited",
      async () =>
        (await audited(auditLog, "subjectaccessreviews")).find((e) =>
          e.requestObject?.spec?.user === "system:serviceaccount:bpfd:bpfd-node"
        ),
      10000,
    );
    assert.deepEqual(sar.requestObject.spec.extra["authentication.kubernetes.io/pod-name"], ["bpfd-node-a"]);
    // The TokenReview carries node A's audience.
    const reviews = await audited(auditLog, "tokenreviews");
    assert.ok(reviews.length > 0);
    assert.ok(reviews.every((e) => e.requestObject.spec.audiences?.[0]?.startsWith("bpfd.io/node/")));

    // 1,000 distinct bad tokens: one review each; the same again within 10 s: none; one bad token 1,000
    // times: one review.
    const before = (await audited(auditLog, "tokenreviews")).length;
    const bad = Array.from({ length: 1000 }, (_, i) => `bad-token-${i}-${crypto.randomUUID()}`);
    const sendAll = async (list: string[]) => {
      for (let i = 0; i < list.length; i += 50) {
        const answers = await Promise.all(list.slice(i, i + 50).map((t) => a.call("list", {}, t)));
        assert.ok(answers.every((r) => r.status === 401));
      }
    };
    const started = Date.now();
    await sendAll(bad);
    await sendAll(bad);
    const elapsed = Date.now() - started;
    const one = `bad-token-repeated-${crypto.randomUUID()}`;
    await sendAll(Array.from({ length: 1000 }, () => one));
    // The audit log is written asynchronously: wait until the count settles.
    let count = -1;
    await waitFor(
      "the audit log settled",
      async () => {
        const now = (await audited(auditLog, "tokenreviews")).length;
        const settled = now === count;
        count = now;
        return settled;
      },
      20000,
      1000,
    );
    const reviewed = count - before;
    if (elapsed < 10_000) {
      assert.equal(reviewed, 1001, `${reviewed} TokenReviews for 1,001 distinct bad tokens`);
    } else assert.ok(reviewed <= 2001, `${reviewed} TokenReviews (the window passed: ${elapsed} ms)`);
  } finally {
    await signer?.stop();
    for (const rt of Object.values(runtimes)) await rt?.destroy(undefined);
    await kube.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
