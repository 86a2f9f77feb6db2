/**
 * `bpfd trace --pod` on the real node (issue 18's cluster tier): a pod runs a static binary built here
 * (`/app/server`, in an image made with umoci, a path that exists only inside the pod); the CLI, run from
 * the peer's namespace like a user's machine with a kubeconfig whose user is bound to `bpfd-tracer`, finds
 * the pod's node and container, and the node probes `uprobe:/app/server:handle` through the container's
 * root. The calls made in the pod are counted exactly; a ServiceAccount without the role is refused by
 * the node. Everything the test makes, and bpfd, is removed in `finally`.
 */
import assert from "node:assert/strict";
import { importImage, IN_PEER } from "../../deploy/cluster.ts";
import {
  deployCli,
  get,
  IMAGE_ARCHIVE,
  IMAGE_REF,
  inNode,
  isReady,
  type Json,
  k,
  KUBECONFIG,
  kubectl,
  NODE_IP,
  pods,
  root,
  run,
  serviceAccountKubeconfig,
  undeployAll,
  useCluster,
  waitUntil,
  withLogs,
} from "./_cluster.ts";

const TARGET_IMAGE = "localhost/bpfd-uprobe-target:1";
const POD = "uprobe-target";
const TRACER = "bpfd-test-tracer";
const STRANGER = "bpfd-test-stranger";
const SCRIPT = "uprobe:/app/server:handle { @calls = count(); }";

/** Without arguments it waits forever; with N it calls handle() N times and exits. */
const SERVER_C = `#include <stdlib.h>
#include <unistd.h>
volatile long sink;
__attribute__((noinline)) void handle(long i) { sink += i; }
int main(int argc, char **argv) {
  if (argc < 2) for (;;) pause();
  for (long i = 0, n = atol(argv[1]); i < n; i++) handle(i);
  return 0;
}
`;

/** Builds /app/server (gcc -static) into an OCI image, loaded into the node's containerd. */
async function buildTargetImage(dir: string): Promise<void> {
  await Deno.writeTextFile(`${dir}/server.c`, SERVER_C);
  const script = `set -e
    gcc -static -O1 -o server server.c
    umoci init --layout oci
    umoci new --image oci:t
    umoci unpack --image oci:t bundle >/dev/null
    mkdir -p bundle/rootfs/app && cp server bundle/rootfs/app/server
    umoci repack --image oci:t bundle >/dev/null
    umoci config --image oci:t --config.entrypoint /app/server
    skopeo copy -q oci:oci:t oci-archive:target.tar:${TARGET_IMAGE}`;
  const r = await run("bash", ["-c", `cd ${dir} && ${script}`]);
  assert.equal(r.code, 0, r.stderr);
  await importImage(`${dir}/target.tar`, TARGET_IMAGE);
}

/** The objects the test makes: the pod, the tracer (bound to bpfd-tracer), a stranger (not bound). */
function testObjects(): Json[] {
  const rbac = "rbac.authorization.k8s.io/v1";
  const sa = (name: string) => ({ kind: "ServiceAccount", name, namespace: "default" });
  return [
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: POD, namespace: "default" },
      spec: {
        terminationGracePeriodSeconds: 0,
        containers: [{ name: "server", image: TARGET_IMAGE, imagePullPolicy: "Never" }],
      },
    },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: TRACER, namespace: "default" } },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: STRANGER, namespace: "default" } },
    {
      apiVersion: rbac,
      kind: "ClusterRoleBinding",
      metadata: { name: TRACER },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "bpfd-tracer" },
      subjects: [sa(TRACER)],
    },
    // The tracer asks for its own node-audience tokens (`--service-account`).
    {
      apiVersion: rbac,
      kind: "Role",
      metadata: { name: TRACER, namespace: "default" },
      rules: [{
        apiGroups: [""],
        resources: ["serviceaccounts/token"],
        verbs: ["create"],
        resourceNames: [TRACER],
      }],
    },
    {
      apiVersion: rbac,
      kind: "RoleBinding",
      metadata: { name: TRACER, namespace: "default" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: TRACER },
      subjects: [sa(TRACER)],
    },
  ];
}

/** `kubeconfig` with the API server at the node's address (what the peer's namespace reaches). */
async function forPeer(kubeconfig: string, dir: string, name: string): Promise<string> {
  const file = `${dir}/${name}.kubeconfig`;
  const text = await Deno.readTextFile(kubeconfig);
  await Deno.writeTextFile(file, text.replace(/server: https:\/\/[^\n]+/, `server: https://${NODE_IP}:6443`));
  return file;
}

/** `bpfd trace --pod` from the peer's namespace; `whileRunning` runs once bpftrace attached, then Ctrl-C. */
async function tracePod(
  kubeconfig: string,
  args: string[],
  whileRunning?: () => Promise<void>,
): Promise<{ code: number; out: string; err: string }> {
  const child = new Deno.Command(IN_PEER[0], {
    args: [
      ...IN_PEER.slice(1),
      Deno.execPath(),
      "run",
      "-A",
      `${root}cli/main.ts`,
      "trace",
      "--pod",
      `default/${POD}`,
      "-e",
      SCRIPT,
      "--duration",
      "90s",
      ...args,
    ],
    env: { KUBECONFIG: kubeconfig },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  const read = async (s: ReadableStream<Uint8Array>, add: (t: string) => void) => {
    for await (const t of s.pipeThrough(new TextDecoderStream())) add(t);
  };
  const reading = Promise.all([read(child.stdout, (t) => out += t), read(child.stderr, (t) => err += t)]);
  try {
    if (whileRunning) {
      await waitUntil(
        "bpftrace attached in the pod's node",
        60,
        () => Promise.resolve(/Attaching 1 probe/.test(out)),
      );
      await whileRunning();
      child.kill("SIGINT"); // the first Ctrl-C: the session stops, bpftrace prints its map
    }
    const { code } = await child.status;
    await reading;
    return { code, out, err };
  } catch (e) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    throw new Error(`${(e as Error).message}\nstdout: ${out}\nstderr: ${err}`);
  }
}

Deno.test("cluster trace: bpfd trace --pod counts a uprobe's calls in a binary inside a pod", async (t) => {
  const cluster = await useCluster();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-cluster-trace-" });
  try {
    await importImage(IMAGE_ARCHIVE, IMAGE_REF);
    await undeployAll();
    const deployed = await deployCli(["deploy", "--image", IMAGE_REF, "--pull-policy", "Never"]);
    assert.equal(deployed.code, 0, deployed.stderr);
    await buildTargetImage(dir);
    await k(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: testObjects() }));
    await waitUntil("the node pod and the target pod Ready", 180, async () => {
      const node = await pods("bpfd", "app.kubernetes.io/name=bpfd-node");
      const target = await get(["-n", "default", "pod", POD]);
      return node.length === 1 && isReady(node[0]) && target !== undefined && isReady(target);
    });
    const ca = await k(["-n", "bpfd", "get", "secret", "bpfd-node-ca", "-o", "json"]);
    await Deno.writeTextFile(`${dir}/node-ca.crt`, atob(ca.data["ca.crt"]));
    const nodeCa = ["--node-ca", `${dir}/node-ca.crt`];
    const tracerToken = await serviceAccountKubeconfig("default", TRACER);
    const tracer = await forPeer(tracerToken, dir, "tracer");
    await Deno.remove(tracerToken);
    const admin = await forPeer(KUBECONFIG, dir, "admin");

    await t.step(
      "the tracer's uprobe on /app/server inside the pod counts the 7 calls made there",
      () =>
        withLogs(async () => {
          assert.notEqual(
            (await inNode(["test", "-e", "/app/server"])).code,
            0,
            "no /app/server on the node",
          );
          const r = await tracePod(
            tracer,
            [...nodeCa, "--service-account", `default/${TRACER}`],
            async () => {
              const called = await kubectl(["-n", "default", "exec", POD, "--", "/app/server", "7"]);
              assert.equal(called.code, 0, called.stderr);
            },
          );
          assert.equal(r.code, 0, r.err);
          assert.match(r.out, /^@calls: 7$/m);
          assert.match(r.err, /session ended: stopped/);
        }),
    );

    await t.step("a ServiceAccount without bpfd-tracer is refused by the node", async () => {
      const r = await tracePod(admin, [...nodeCa, "--service-account", `default/${STRANGER}`]);
      assert.equal(r.code, 1, r.out);
      assert.match(r.err, /may not trace nodes\/bpfd on node bpfd-node/);
      assert.doesNotMatch(r.out, /Attaching/);
    });
  } finally {
    await kubectl(
      ["delete", "--ignore-not-found", "--wait=false", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: testObjects(),
      }),
    );
    await waitUntil(
      "the target pod gone",
      60,
      async () => (await get(["-n", "default", "pod", POD])) === undefined,
    )
      .catch(() => {});
    await undeployAll().catch(() => {});
    await inNode([
      "ctr",
      "--address",
      "/run/containerd/containerd.sock",
      "-n",
      "k8s.io",
      "images",
      "rm",
      TARGET_IMAGE,
    ]);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await cluster.release();
  }
});
