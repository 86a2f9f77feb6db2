// Map volumes on this kernel, as root, in a temporary directory: a bpffs with one map stands for bpfd's pins.
import assert from "node:assert/strict";
import { bpffsMountsUnder, publishMapVolume, unpublishMapVolume } from "../../../kernel/map_volumes.ts";
import { KernelError } from "../../../kernel/errors.ts";
import * as bpf from "../../../ffi/libbpf.ts";
import { hasErrno } from "../../../ffi/errno.ts";
import { run } from "../../../lib/command.ts";
import { pinTestMap } from "../_pinned_map.ts";

async function withNodePins(fn: (dir: string, pin: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-mapvol-" });
  try {
    const pin = await pinTestMap(dir, "counter");
    await fn(dir, pin);
  } finally {
    for (const m of (await bpffsMountsUnder(dir)).reverse()) await run("umount", ["-l", m]);
    await Deno.remove(dir, { recursive: true });
  }
}

const KEY = new Uint8Array(4);
const u64 = (v: bigint) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
};

Deno.test("map volume: a read-only bpffs with the named map, owned by the group, at the target only", async () => {
  await withNodePins(async (dir, pin) => {
    bpf.withFd(bpf.objGet(pin), (fd) => bpf.mapUpdate(fd, KEY, u64(42n)));
    const target = `${dir}/pods/p1/mount`;
    await publishMapVolume({ staging: `${dir}/staging/v1`, target, maps: { packets: pin }, gid: 3000 });
    assert.deepEqual(await bpffsMountsUnder(`${dir}/staging`), []);
    assert.deepEqual(await bpffsMountsUnder(`${dir}/pods`), [target]);
    await assert.rejects(Deno.stat(`${dir}/staging/v1`), Deno.errors.NotFound);
    const st = await Deno.stat(`${target}/packets`);
    assert.equal(st.gid, 3000);
    assert.equal(st.mode! & 0o777, 0o440);
    assert.deepEqual([...Deno.readDirSync(target)].map((e) => e.name), ["packets"]);
    // The same map (the node's value), readable; a write open fails even for root: the superblock is ro.
    const v = bpf.withFd(bpf.objGetReadOnly(`${target}/packets`), (fd) => bpf.mapLookup(fd, KEY, 8));
    assert.equal(new DataView(v!.buffer).getBigUint64(0, true), 42n);
    assert.throws(() => bpf.objGet(`${target}/packets`), (err) => hasErrno(err, "EROFS"));
    await unpublishMapVolume(target);
    assert.deepEqual(await bpffsMountsUnder(`${dir}/pods`), []);
    await assert.rejects(Deno.stat(target), Deno.errors.NotFound);
    await unpublishMapVolume(target); // idempotent
  });
});

Deno.test("map volume: writable pins change the node's map", async () => {
  await withNodePins(async (dir, pin) => {
    const target = `${dir}/pods/p2/mount`;
    await publishMapVolume({
      staging: `${dir}/staging/v2`,
      target,
      maps: { packets: pin },
      gid: 3001,
      writable: true,
    });
    assert.equal((await Deno.stat(`${target}/packets`)).mode! & 0o777, 0o660);
    bpf.withFd(bpf.objGet(`${target}/packets`), (fd) => bpf.mapUpdate(fd, KEY, u64(7n)));
    const v = bpf.withFd(bpf.objGetReadOnly(pin), (fd) => bpf.mapLookup(fd, KEY, 8));
    assert.equal(new DataView(v!.buffer).getBigUint64(0, true), 7n);
    await unpublishMapVolume(target);
    assert.deepEqual(await bpffsMountsUnder(dir), [`${dir}/node`]);
  });
});

Deno.test("map volume: a missing map pin fails the publish and leaves no mount, pin or directory", async () => {
  await withNodePins(async (dir, pin) => {
    const target = `${dir}/pods/p3/mount`;
    await assert.rejects(
      publishMapVolume({
        staging: `${dir}/staging/v3`,
        target,
        maps: { packets: pin, gone: `${dir}/node/gone` },
        gid: 3000,
      }),
      (err) => err instanceof KernelError && /node\/gone/.test(err.message) && /ENOENT/.test(err.message),
    );
    assert.deepEqual(await bpffsMountsUnder(dir), [`${dir}/node`]);
    await assert.rejects(Deno.stat(`${dir}/staging/v3`), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(target), Deno.errors.NotFound);
  });
});
