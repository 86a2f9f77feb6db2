// The CSI plugin over its real sockets, as the kubelet calls it, in a temporary kubelet directory: gRPC
// registration, Identity and Node; a map volume published from a real map pin and removed again; refusals
// with their gRPC status and nothing left behind. The API server is a fake (tests/k8s and the cluster tier
// have the real one).
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";
import { serveCsi } from "../../../csi/server.ts";
import { CsiConfig, csiSockets } from "../../../csi/config.ts";
import { MapVolumes } from "../../../csi/volumes.ts";
import type { KubeApi } from "../../../csi/access.ts";
import { bpffsMountsUnder } from "../../../kernel/map_volumes.ts";
import { Logger } from "../../../lib/log.ts";
import { run } from "../../../lib/command.ts";
import type { ProgramRecord } from "../../../model/schemas.ts";
import { pinTestMap } from "../_pinned_map.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
const UID = "0b9c2f1e-1111-4222-8333-444455556666";
const NODE = "node-a";

function client(path: string, file: string, pkg: string[], service: string): Any {
  const def = loader.loadSync(new URL(`../../../csi/protos/${file}`, import.meta.url).pathname, {
    longs: String,
    enums: String,
    defaults: true,
  });
  let ns: Any = grpc.loadPackageDefinition(def);
  for (const p of pkg) ns = ns[p];
  return new ns[service](`unix:${path}`, grpc.credentials.createInsecure());
}

function call(c: Any, method: string, req: unknown): Promise<Any> {
  return new Promise((resolve, reject) => c[method](req, (e: Any, r: Any) => e ? reject(e) : resolve(r)));
}

/** A fake API server: one pod, one config; reviews allowed per verb. */
function fakeApi(allowed: Set<string>): KubeApi & { reviews: Any[] } {
  const reviews: Any[] = [];
  return {
    reviews,
    get<T>(path: string) {
      const objects: Record<string, Any> = {
        "/api/v1/namespaces/apps/pods/reader": {
          metadata: { uid: UID },
          spec: { nodeName: NODE, serviceAccountName: "reader", securityContext: { fsGroup: 3000 } },
        },
        "/apis/bpfd.io/v1alpha1/bpfprogramconfigs/counter": {},
        "/apis/bpfd.io/v1alpha1/bpfprogramconfigs/waiting": {},
      };
      return Promise.resolve(objects[path] as T | undefined);
    },
    create<T>(_path: string, body: Any) {
      reviews.push(body.spec);
      return Promise.resolve({ status: { allowed: allowed.has(body.spec.resourceAttributes.verb) } } as T);
    },
  };
}

Deno.test("csi plugin: registration, identity, publish and unpublish over the sockets", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-csi-" });
  const kubeletDir = `${dir}/kubelet`;
  const config = CsiConfig.parse({ kubeletDir, maxVolumesPerPod: 2 });
  const sockets = csiSockets(config);
  const log = new Logger("error");
  let plugin: Awaited<ReturnType<typeof serveCsi>> | undefined;
  const clients: Any[] = [];
  try {
    const pin = await pinTestMap(dir, "packets");
    const record = {
      id: 1,
      maps: { packets: pin },
      metadata: { "bpfd.io/config": "counter" },
      reconciledFor: `counter-${NODE}`,
      loadedAt: new Date().toISOString(),
    } as unknown as ProgramRecord;
    const api = fakeApi(new Set(["use"]));
    const volumes = await MapVolumes.open({ ...config, stateDir: dir, log });
    plugin = await serveCsi({
      config,
      volumes,
      access: { api, nodeName: NODE, programs: () => [record] },
      log,
    });

    for (const s of [sockets.registration, sockets.endpoint]) {
      assert.equal((await Deno.stat(s)).mode! & 0o777, 0o600);
    }
    const reg = client(sockets.registration, "registration.proto", ["pluginregistration"], "Registration");
    const identity = client(sockets.endpoint, "csi.proto", ["csi", "v1"], "Identity");
    const node = client(sockets.endpoint, "csi.proto", ["csi", "v1"], "Node");
    clients.push(reg, identity, node);
    const info = await call(reg, "GetInfo", {});
    assert.deepEqual(
      { type: info.type, name: info.name, endpoint: info.endpoint, versions: info.supportedVersions },
      { type: "CSIPlugin", name: "csi.bpfd.io", endpoint: sockets.endpoint, versions: ["1.0.0"] },
    );
    await call(reg, "NotifyRegistrationStatus", { pluginRegistered: true });
    assert.equal((await call(identity, "GetPluginInfo", {})).name, "csi.bpfd.io");
    assert.equal((await call(identity, "Probe", {})).ready.value, true);
    assert.equal((await call(node, "NodeGetInfo", {})).nodeId, NODE);

    const target = (vol: string) => `${kubeletDir}/pods/${UID}/volumes/kubernetes.io~csi/${vol}/mount`;
    const publish = (vol: string, attrs: Record<string, string>, readonly = true) =>
      call(node, "NodePublishVolume", {
        volumeId: `csi-${vol}`,
        targetPath: target(vol),
        readonly,
        volumeCapability: { mount: {}, accessMode: { mode: "SINGLE_NODE_WRITER" } },
        volumeContext: {
          "csi.storage.k8s.io/pod.namespace": "apps",
          "csi.storage.k8s.io/pod.name": "reader",
          "csi.storage.k8s.io/pod.uid": UID,
          "csi.storage.k8s.io/serviceAccount.name": "reader",
          "csi.storage.k8s.io/ephemeral": "true",
          ...attrs,
        },
      });
    const published: string[] = [];
    const refused = async (p: Promise<unknown>, code: grpc.status, message: RegExp) => {
      await assert.rejects(p, (e: Any) => {
        assert.equal(e.code, code, e.details);
        assert.match(e.details, message);
        return true;
      });
      assert.deepEqual(await bpffsMountsUnder(`${kubeletDir}/pods`), published, "no other mount");
      assert.deepEqual(await bpffsMountsUnder(`${dir}/csi-staging`), [], "no staging mount left");
    };

    const ok = { "bpfd.io/config": "counter", "bpfd.io/maps": "packets" };
    await publish("maps", ok);
    published.push(target("maps"));
    assert.deepEqual(await bpffsMountsUnder(`${kubeletDir}/pods`, true), [target("maps")]);
    assert.equal((await Deno.stat(`${target("maps")}/packets`)).gid, 3000);
    await publish("maps", ok); // idempotent
    assert.equal(api.reviews[0].user, "system:serviceaccount:apps:reader");
    assert.deepEqual(api.reviews[0].resourceAttributes, {
      group: "bpfd.io",
      resource: "bpfprogramconfigs",
      subresource: "maps",
      namespace: "apps",
      verb: "use",
      name: "counter",
    });

    await refused(
      publish("w", ok, false),
      grpc.status.PERMISSION_DENIED,
      /may not write the maps of BpfProgramConfig counter/,
    );
    await refused(
      publish("u", { ...ok, "bpfd.io/config": "nope" }),
      grpc.status.NOT_FOUND,
      /BpfProgramConfig nope not found/,
    );
    await refused(
      publish("u", { ...ok, "bpfd.io/config": "waiting" }),
      grpc.status.UNAVAILABLE,
      /not Loaded on node node-a yet/,
    );
    await refused(
      publish("u", { ...ok, "bpfd.io/maps": "packets,other" }),
      grpc.status.NOT_FOUND,
      /has no map other/,
    );
    await refused(
      publish("u", { ...ok, "bpfd.io/maps": "a b" }),
      grpc.status.INVALID_ARGUMENT,
      /bpfd.io\/maps/,
    );
    await refused(
      publish("u", { "bpfd.io/maps": "packets" }),
      grpc.status.INVALID_ARGUMENT,
      /bpfd.io\/config is required/,
    );
    await refused(
      call(node, "NodePublishVolume", {
        volumeId: "csi-x",
        targetPath: "/etc",
        readonly: true,
        volumeContext: {},
      }),
      grpc.status.INVALID_ARGUMENT,
      /volume_context lacks csi.storage.k8s.io\/pod.namespace/,
    );
    await refused(
      call(node, "NodePublishVolume", {
        volumeId: "csi-x",
        targetPath: `${dir}/elsewhere/mount`,
        readonly: true,
        volumeContext: {
          "csi.storage.k8s.io/pod.namespace": "apps",
          "csi.storage.k8s.io/pod.name": "reader",
          "csi.storage.k8s.io/pod.uid": UID,
          "csi.storage.k8s.io/serviceAccount.name": "reader",
          ...ok,
        },
      }),
      grpc.status.INVALID_ARGUMENT,
      /target_path .* is not a pod's CSI volume directory/,
    );
    await publish("second", ok);
    published.push(target("second"));
    await refused(publish("third", ok), grpc.status.RESOURCE_EXHAUSTED, /has 2 map volumes: at most 2/);
    assert.equal((await bpffsMountsUnder(`${kubeletDir}/pods`, true)).length, 2);

    for (const vol of ["maps", "second"]) {
      await call(node, "NodeUnpublishVolume", { volumeId: `csi-${vol}`, targetPath: target(vol) });
    }
    await call(node, "NodeUnpublishVolume", { volumeId: "csi-maps", targetPath: target("maps") }); // idempotent
    assert.deepEqual(await bpffsMountsUnder(`${kubeletDir}/pods`), []);
    assert.deepEqual(volumes.records(), []);
    await assert.rejects(Deno.stat(target("maps")), Deno.errors.NotFound);
  } finally {
    for (const c of clients) c.close();
    await plugin?.stop();
    for (const m of (await bpffsMountsUnder(dir)).reverse()) await run("umount", ["-l", m]);
    await Deno.remove(dir, { recursive: true });
  }
});
