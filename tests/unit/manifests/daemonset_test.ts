/** The node DaemonSet's mounts and limits (docs/trust-model.md, "Low items"). */
import assert from "node:assert/strict";
import { manifestDocuments } from "../../../manifests/manifests.ts";
import { RuntimeConfig } from "../../../runtime/config.ts";
import { ImageStoreConfig } from "../../../model/image.ts";

// deno-lint-ignore no-explicit-any
const byKind = (kind: string, name: string): any =>
  manifestDocuments({}).find((d) => d.kind === kind && (d.metadata as { name: string }).name === name);

Deno.test("node DaemonSet: only /run/bpfd and the kubelet's pods dir propagate back to the host, /sys comes from it", () => {
  const pod = byKind("DaemonSet", "bpfd-node").spec.template.spec;
  const mounts = new Map<string, string | undefined>(
    pod.containers[0].volumeMounts.map((m: { mountPath: string; mountPropagation?: string }) => [
      m.mountPath,
      m.mountPropagation,
    ]),
  );
  assert.equal(mounts.get("/run/bpfd"), "Bidirectional");
  assert.equal(mounts.get("/sys"), "HostToContainer");
  assert.equal(mounts.get("/var/lib/kubelet/pods"), "Bidirectional"); // map volumes (manifests/csi.ts)
  assert.deepEqual([...mounts.values()].filter((p) => p === "Bidirectional"), [
    "Bidirectional",
    "Bidirectional",
  ]);
});

Deno.test("node DaemonSet: memory and ephemeral-storage limits above the requests", () => {
  const { requests, limits } = byKind("DaemonSet", "bpfd-node").spec.template.spec.containers[0].resources;
  assert.equal(requests.memory, "64Mi");
  assert.equal(limits.memory, "1280Mi");
  assert.equal(limits["ephemeral-storage"], "1Gi");
});

Deno.test("node DaemonSet: the image cache hostPath is mounted where the node config caches images", () => {
  const pod = byKind("DaemonSet", "bpfd-node").spec.template.spec;
  const config = RuntimeConfig.parse(JSON.parse(byKind("ConfigMap", "bpfd-node-config").data["node.json"]));
  const volume = pod.volumes.find((v: { name: string }) => v.name === "image-cache");
  const mount = pod.containers[0].volumeMounts.find((m: { name: string }) => m.name === "image-cache");
  assert.equal(config.images?.cacheDir, ImageStoreConfig.parse({}).cacheDir);
  assert.equal(volume.hostPath.path, config.images?.cacheDir);
  assert.equal(mount.mountPath, config.images?.cacheDir);
});

Deno.test("node config: deploy's registries reach node.json and its CA file; a new one rolls the pods", () => {
  const docs = (opts = {}) => {
    const all = manifestDocuments(opts);
    const config = all.find((d) => d.kind === "ConfigMap" && d.metadata.name === "bpfd-node-config")!;
    const ds = all.find((d) => d.kind === "DaemonSet")!;
    return { data: config.data, hash: ds.spec.template.metadata.annotations["bpfd.io/node-config-hash"] };
  };
  const plain = docs();
  const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  const told = docs({ insecureRegistries: ["10.0.0.1:5000"], registryCa: ca });
  const images = RuntimeConfig.parse(JSON.parse(told.data["node.json"])).images!;
  assert.deepEqual(images.insecureRegistries, ["10.0.0.1:5000"]);
  assert.deepEqual(images.caFiles, ["/etc/bpfd/config/registry-ca.pem"]);
  assert.equal(told.data["registry-ca.pem"], ca); // the config volume mounts every key at /etc/bpfd/config
  assert.equal(JSON.parse(plain.data["node.json"]).images.caFiles, undefined);
  assert.notEqual(plain.hash, told.hash);
  assert.equal(docs().hash, plain.hash);
});
