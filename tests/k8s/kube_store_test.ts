// The controller's caches against a real kube-apiserver that does not serve bpfd's CRDs yet (as one that
// is restarting answers 404 for CRDs for a few seconds): KubeStore.start() must wait for lists that
// succeeded, never hand the reconciler an empty cache (it would unload every program of every node).
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { KubeStore } from "../../controller/kube.ts";
import { Logger } from "../../lib/log.ts";
import { startKube, waitFor } from "../_kube.ts";
import { CRDS_DIR } from "./_cluster.ts";

Deno.test("KubeStore.start waits until bpfd's CRDs are served and listed, then holds what exists", async () => {
  const kube = await startKube();
  const kc = kube.kubeConfig();
  const store = new KubeStore({
    kc,
    namespace: "bpfd",
    identity: "kube-store-test",
    nodePort: () => 50052,
    log: () => new Logger("error"),
  }, { config: () => {}, program: () => {}, node: () => {}, settings: () => {} });
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNode({ body: { metadata: { name: "node-a" } } });
  let started = false;
  const starting = store.start().then(() => started = true);
  try {
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(started, false, "start() resolved while bpfprogramconfigs could not be listed");

    const r = await kube.kubectl(["apply", "-f", CRDS_DIR]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor("start() resolved", () => started, 30_000);
    assert.deepEqual(store.nodes().map((n) => n.name), ["node-a"]);

    // The watches run after a start that had to retry: a new config reaches the cache.
    const example = await kube.kubectl(["apply", "-f", `${CRDS_DIR}examples/xdp-pass-all-nodes.yaml`]);
    assert.equal(example.code, 0, example.stderr);
    await waitFor("the config in the cache", () => store.configs().length === 1, 30_000);
  } finally {
    await store.stop();
    await starting.catch(() => {});
    await kube.stop();
  }
});
