// Recovery at the runtime's start, on this kernel in a temporary kubelet directory: a staging mount left by
// a publish cut short, a map volume mount no record knows, a recorded volume whose pod is gone — all
// removed; the volume of a pod that still runs stays, and so does its record.
import assert from "node:assert/strict";
import { MapVolumes } from "../../../csi/volumes.ts";
import { bpffsMountsUnder, publishMapVolume } from "../../../kernel/map_volumes.ts";
import { Logger } from "../../../lib/log.ts";
import { run } from "../../../lib/command.ts";
import type { PublishRequest } from "../../../csi/request.ts";
import { pinTestMap } from "../_pinned_map.ts";

const uid = (n: number) => `0b9c2f1e-1111-4222-8333-44445555666${n}`;

Deno.test("csi recovery: leftovers and volumes of pods that are gone are removed, live ones stay", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-csi-recover-" });
  const kubeletDir = `${dir}/kubelet`;
  try {
    const pin = await pinTestMap(dir, "packets");
    const target = (n: number) => `${kubeletDir}/pods/${uid(n)}/volumes/kubernetes.io~csi/maps/mount`;
    const request = (n: number): PublishRequest => ({
      volumeId: `csi-${n}`,
      targetPath: target(n),
      pod: { namespace: "apps", name: `p${n}`, uid: uid(n), serviceAccount: "app" },
      config: "counter",
      maps: ["packets"],
      writable: false,
    });
    const opts = { stateDir: dir, kubeletDir, maxVolumes: 10, maxVolumesPerPod: 2, log: new Logger("error") };
    const before = await MapVolumes.open(opts);
    const grant = () => Promise.resolve({ gid: 3000, writable: false, maps: { packets: pin } });
    await before.publish(request(1), grant); // its pod keeps running
    await before.publish(request(2), grant); // its pod is deleted while the runtime is down
    // A volume mounted but never recorded, and a staging mount: a runtime stopped mid-publish.
    await publishMapVolume({
      staging: `${dir}/csi-staging/x`,
      target: target(3),
      maps: { packets: pin },
      gid: 1,
    });
    await Deno.mkdir(`${dir}/csi-staging/y`, { recursive: true });
    assert.equal((await run("mount", ["-t", "bpf", "bpffs", `${dir}/csi-staging/y`])).code, 0);

    const after = await MapVolumes.open(opts);
    const asked: string[] = [];
    const removed = await after.recover((pod) => {
      asked.push(pod.name);
      return Promise.resolve(pod.uid === uid(2));
    });
    assert.deepEqual(asked.sort(), ["p1", "p2"]);
    assert.deepEqual(removed.sort(), [target(2), target(3)]);
    assert.deepEqual(await bpffsMountsUnder(`${kubeletDir}/pods`), [target(1)]);
    assert.deepEqual(await bpffsMountsUnder(`${dir}/csi-staging`), []);
    await assert.rejects(Deno.stat(`${dir}/csi-staging`), Deno.errors.NotFound);
    assert.deepEqual(after.records().map((r) => r.volumeId), ["csi-1"]);
    const saved = JSON.parse(await Deno.readTextFile(`${dir}/csi-volumes.json`));
    assert.deepEqual(saved.map((r: { volumeId: string }) => r.volumeId), ["csi-1"]);
  } finally {
    for (const m of (await bpffsMountsUnder(dir)).reverse()) await run("umount", ["-l", m]);
    await Deno.remove(dir, { recursive: true });
  }
});
