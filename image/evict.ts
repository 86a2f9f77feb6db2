/**
 * Cache eviction: removes images not used for `maxAgeMs`, then the least recently used ones until the cache
 * fits `maxBytes`, never an image in `inUse` or used in the last ten minutes; then removes blobs no image
 * refers to and staging directories of pulls that died.
 *
 * @example
 * ```ts
 * await evictImages(cache, { maxBytes: 1 << 30, maxAgeMs: 30 * DAY_MS, inUse: new Set([digest]) });
 * ```
 * @module
 */
import { join } from "node:path";
import type { ImageCache, ImageRecord } from "./cache.ts";
import { parseManifest } from "./format.ts";

/** One day in milliseconds. */
export const DAY_MS = 24 * 60 * 60 * 1000;

/** Blobs written and images used more recently than this are kept: a pull may be committing, a load may
 * be about to use what it pulled. */
const GRACE_MS = 10 * 60 * 1000;

/** Staging directories younger than this are kept (another process may still be pulling). */
const STAGING_MS = 60 * 60 * 1000;

/** What eviction may do. */
export interface EvictionOptions {
  maxBytes: number;
  maxAgeMs: number;
  /** Digests of images in use: never evicted, whatever their age or the cache's size. */
  inUse: ReadonlySet<string>;
  now?: number;
}

/** What eviction did. */
export interface EvictionReport {
  /** Digests of the images removed. */
  evicted: string[];
  /** Size of the cache before and after, in bytes (blobs and extracted objects). */
  before: number;
  after: number;
}

interface CachedImage {
  record: ImageRecord;
  usedAt: number;
  blobs: Set<string>;
  objectBytes: number;
}

/** Evicts images from `cache` by age, then by size (least recently used first). */
export async function evictImages(cache: ImageCache, opts: EvictionOptions): Promise<EvictionReport> {
  const now = opts.now ?? Date.now();
  const blobs = await fileSizes(join(cache.dir, "blobs", "sha256"));
  const images = await cachedImages(cache);
  const sizeOf = (kept: CachedImage[]) => {
    const referenced = new Set(kept.flatMap((i) => [...i.blobs]));
    let n = kept.reduce((sum, i) => sum + i.objectBytes, 0);
    for (const [hex, f] of blobs) {
      if (referenced.has(`sha256:${hex}`) || now - f.mtime < GRACE_MS) n += f.size;
    }
    return n;
  };
  const before = [...blobs.values()].reduce((sum, f) => sum + f.size, 0) +
    images.reduce((sum, i) => sum + i.objectBytes, 0);
  // Images used within the grace period are about to be loaded (pulled, not yet recorded): kept too.
  const candidates = images.filter((i) => !opts.inUse.has(i.record.digest) && now - i.usedAt >= GRACE_MS)
    .sort((a, b) => a.usedAt - b.usedAt);
  let kept = images;
  const evicted: CachedImage[] = [];
  for (const c of candidates) {
    if (now - c.usedAt <= opts.maxAgeMs && sizeOf(kept) <= opts.maxBytes) break;
    evicted.push(c);
    kept = kept.filter((i) => i !== c);
  }
  for (const e of evicted) await removeImage(cache, e.record.digest);
  const referenced = new Set(kept.flatMap((i) => [...i.blobs]));
  for (const [hex, f] of blobs) {
    if (!referenced.has(`sha256:${hex}`) && now - f.mtime >= GRACE_MS) {
      await Deno.remove(join(cache.dir, "blobs", "sha256", hex)).catch(() => {/* removed meanwhile */});
    }
  }
  await removeStale(join(cache.dir, "tmp"), now);
  return { evicted: evicted.map((e) => e.record.digest), before, after: sizeOf(kept) };
}

/** The images in the cache with what they refer to; a record that does not parse refers to nothing. */
async function cachedImages(cache: ImageCache): Promise<CachedImage[]> {
  const out: CachedImage[] = [];
  for await (const e of Deno.readDir(join(cache.dir, "images"))) {
    const m = /^([a-f0-9]{64})\.json$/.exec(e.name);
    if (!m) continue;
    const digest = `sha256:${m[1]}`;
    const record = await cache.readRecord(digest);
    const stat = await Deno.stat(cache.recordPath(digest)).catch(() => undefined);
    if (!record || !stat) continue;
    const objects = await fileSizes(cache.objectDir(digest));
    out.push({
      record,
      usedAt: stat.mtime?.getTime() ?? 0,
      blobs: await blobsOf(cache, record),
      objectBytes: [...objects.values()].reduce((sum, f) => sum + f.size, 0),
    });
  }
  return out;
}

/** Every blob an image refers to: manifests, index, config, layers, signature manifests and payloads. */
async function blobsOf(cache: ImageCache, record: ImageRecord): Promise<Set<string>> {
  const out = new Set([record.digest, ...record.signatureManifests]);
  if (record.indexDigest) out.add(record.indexDigest);
  for (const d of [record.digest, ...record.signatureManifests]) {
    try {
      const m = parseManifest(await Deno.readFile(cache.blobPath(d)), "cached manifest");
      for (const b of [m.config, ...m.layers]) out.add(b.digest);
    } catch { /* missing or damaged: its blobs are garbage */ }
  }
  return out;
}

/** Removes an image's record, objects and the tag references that point at it. */
async function removeImage(cache: ImageCache, digest: string): Promise<void> {
  await Deno.remove(cache.recordPath(digest)).catch(() => {/* removed meanwhile */});
  await Deno.remove(cache.objectDir(digest), { recursive: true }).catch(() => {/* no objects */});
  for await (const e of Deno.readDir(join(cache.dir, "refs"))) {
    const path = join(cache.dir, "refs", e.name);
    try {
      const r = JSON.parse(await Deno.readTextFile(path)) as { ref: string; digest: string };
      if (r.digest === digest && path === cache.refPath(r.ref)) await Deno.remove(path);
    } catch { /* not a reference file */ }
  }
}

/** Sizes and modification times of the files in a directory (none if it does not exist). */
async function fileSizes(dir: string): Promise<Map<string, { size: number; mtime: number }>> {
  const out = new Map<string, { size: number; mtime: number }>();
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile) continue;
      const st = await Deno.stat(join(dir, e.name)).catch(() => undefined);
      if (st) out.set(e.name, { size: st.size, mtime: st.mtime?.getTime() ?? 0 });
    }
  } catch { /* no such directory */ }
  return out;
}

/** Removes old staging directories (pulls of a process that died). */
async function removeStale(dir: string, now: number): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    const st = await Deno.stat(path).catch(() => undefined);
    if (st && now - (st.mtime?.getTime() ?? now) >= STAGING_MS) {
      await Deno.remove(path, { recursive: true }).catch(() => {/* removed meanwhile */});
    }
  }
}
