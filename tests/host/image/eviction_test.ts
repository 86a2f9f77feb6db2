// Cache eviction against Debian's docker-registry on loopback: images unused for cacheMaxAgeDays go, then
// the least recently used until the cache fits cacheMaxBytes; images in use and images just pulled stay;
// blobs shared with a kept image stay, the rest is removed; a pull that says what is in use evicts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { startRegistry } from "../../_registry.ts";
import { type ImageStore } from "../../../image/store.ts";
import { pushTestImage, rejectsWith, storeFor } from "./_helpers.ts";

const DAY = 24 * 60 * 60 * 1000;
const HOUR = 60 * 60 * 1000;

/** Makes an image look last used `ago` ms before `now`. */
async function usedAgo(store: ImageStore, digest: string, ago: number, now = Date.now()): Promise<void> {
  const t = new Date(now - ago);
  await Deno.utime(store.cache.recordPath(digest), t, t);
}

Deno.test("cache eviction: by age, then least recently used by size; never in use or just pulled", async () => {
  const reg = await startRegistry();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-image-evict-" });
  try {
    const cacheDir = join(dir, "cache");
    const store = storeFor(reg, cacheDir);
    // Three images that share their layer (same .o) and differ in their config (labels).
    const digests: Record<string, string> = {};
    for (const name of ["old", "lru", "used"]) {
      digests[name] = await pushTestImage(store, reg, `evict/${name}:v1`, { maps: { [name]: "array" } });
      await store.pull({ url: `${reg.host}/evict/${name}:v1` });
    }
    const layerBlob = (await store.cache.listFiles()).filter((f) => f.startsWith("blobs/")).length;
    assert.equal(layerBlob, 7, "3 manifests, 3 configs, 1 shared layer");
    const now = Date.now() + HOUR; // past the grace period of fresh files
    await usedAgo(store, digests.old, 40 * DAY, now);
    await usedAgo(store, digests.lru, 2 * DAY, now);
    await usedAgo(store, digests.used, 50 * DAY, now);

    // By age: "old" goes; "used" is older still, but in use.
    const byAge = await store.evict(new Set([digests.used]), now);
    assert.deepEqual(byAge?.evicted, [digests.old]);
    await rejectsWith(store.pull({ url: `${reg.host}/evict/old:v1`, pullPolicy: "Never" }), "not_cached");
    assert.equal(
      (await store.pull({ url: `${reg.host}/evict/lru:v1`, pullPolicy: "Never" })).fromCache,
      true,
    );
    await usedAgo(store, digests.lru, 2 * DAY, now);

    // By size: a store on the same cache that may keep 1 byte evicts all it may, least recently used first.
    const small = storeFor(reg, cacheDir, { cacheMaxBytes: 1 });
    const bySize = await small.evict(new Set([digests.used]), now);
    assert.deepEqual(bySize?.evicted, [digests.lru]);
    assert.ok(bySize!.after < bySize!.before);
    const files = await store.cache.listFiles();
    const hex = (d: string) => d.slice(7);
    assert.ok(files.some((f) => f.includes(hex(digests.used))), "the image in use is kept");
    assert.ok(
      !files.some((f) => f.includes(hex(digests.old)) || f.includes(hex(digests.lru))),
      files.join("\n"),
    );
    assert.equal(
      files.filter((f) => f.startsWith("blobs/")).length,
      3,
      "its manifest, config and the shared layer",
    );
    const kept = await small.pull({ url: `${reg.host}/evict/used:v1`, pullPolicy: "Never" });
    assert.deepEqual(kept.maps, { used: "array" }, "what is kept still verifies");

    // A pull that says what is in use evicts afterwards, but never what it just pulled.
    await small.pull({ url: `${reg.host}/evict/lru:v1`, pullPolicy: "Always" });
    await usedAgo(small, digests.used, 40 * DAY);
    const again = await small.pull({ url: `${reg.host}/evict/old:v1` }, { inUse: () => [] });
    assert.equal(again.fromCache, false);
    assert.equal(
      (await small.pull({ url: `${reg.host}/evict/old:v1`, pullPolicy: "Never" })).digest,
      digests.old,
    );
    assert.equal(
      (await small.pull({ url: `${reg.host}/evict/lru:v1`, pullPolicy: "Never" })).digest,
      digests.lru,
    );
    await rejectsWith(small.pull({ url: `${reg.host}/evict/used:v1`, pullPolicy: "Never" }), "not_cached");
    small.close();
    store.close();
  } finally {
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
