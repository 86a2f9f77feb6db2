/**
 * The steps of a pull: download an image into staging (manifest or index, config, layers streamed to disk
 * and unpacked within the configured limits, signatures) and commit it, or serve a cached one after
 * verifying it all again. A failed download leaves nothing in the cache.
 *
 * @example
 * ```ts
 * const pulled = await downloadImage(steps, client, parseReference("quay.io/bpfd-bytecode/xdp_pass:latest"));
 * ```
 * @module
 */
import { allowed, type AllowList } from "./allow.ts";
import { type ImageCache, type ImageRecord, type Staging, writeAll } from "./cache.ts";
import { type CosignSignature, type Trust, verifySignatures } from "./cosign.ts";
import { ImageError } from "./errors.ts";
import {
  choosePlatform,
  type Descriptor,
  hostPlatform,
  type ImageManifest,
  isLayerType,
  parseIndex,
  parseJSON,
  parseManifest,
  readLabels,
  readLayerObjects,
  shown,
} from "./format.ts";
import { formatReference, type Reference } from "./reference.ts";
import { MT, type RegistryClient } from "./registry.ts";
import type { ImageStoreConfigParsed, PulledImage, PullProgress } from "../model/image.ts";

/** What the pull steps need from the store. */
export interface PullSteps {
  cache: ImageCache;
  config: ImageStoreConfigParsed;
  allow: AllowList;
  trust: Trust;
  progress: (p: PullProgress) => void;
}

/** Throws not_allowed unless the allow-list admits `ref` by name or by one of `digests`. */
export function checkAllowed(allow: AllowList, ref: Reference, digests: string[]): void {
  if (allowed(allow, ref, digests)) return;
  throw new ImageError(
    "not_allowed",
    `image ${formatReference(ref)} (${digests[0] ?? "digest unknown"}) is not allowed: neither its name ` +
      `nor its digest is on the allow-list`,
  );
}

/** Downloads `ref` from the registry, verifies it and commits it to the cache. */
export async function downloadImage(
  s: PullSteps,
  client: RegistryClient,
  ref: Reference,
): Promise<PulledImage> {
  const canonical = formatReference(ref);
  const staging = await s.cache.stage();
  try {
    let top = await client.getManifest(ref.repository, ref.digest ?? ref.tag!);
    let indexDigest: string | undefined;
    if (top.mediaType === MT.ociIndex || top.mediaType === MT.dockerList) {
      indexDigest = top.digest;
      await staging.putBlob(top.bytes, top.digest);
      const index = parseIndex(top.bytes, `index ${canonical}`);
      const d = choosePlatform(index, s.config.platform ?? hostPlatform(), `index ${canonical}`);
      top = await client.getManifest(ref.repository, d.digest);
    } else if (top.mediaType !== MT.ociManifest && top.mediaType !== MT.dockerManifest) {
      throw new ImageError(
        "bad_image",
        `${canonical}: unsupported manifest media type ${shown(top.mediaType)}`,
      );
    }
    const digest = top.digest;
    const digests = indexDigest ? [digest, indexDigest] : [digest];
    s.progress({ phase: "manifest", digest });
    checkAllowed(s.allow, ref, digests);
    const record = await s.cache.readRecord(digest);
    if (record && await cacheIntact(s, digest)) {
      // Content already cached: fetch only the signatures again (they may have changed).
      const { manifests, sigs } = await fetchSignatures(s, client, ref.repository, digests, staging);
      const fresh: ImageRecord = { ...record, indexDigest, url: canonical, signatureManifests: manifests };
      const result = await serveCached(s, ref, digest, { sigs, record: fresh });
      await staging.commit(fresh, canonical);
      return result;
    }
    await staging.putBlob(top.bytes, digest);
    const manifest = parseManifest(top.bytes, `manifest ${canonical}`);
    const layers = checkLayers(s.config, manifest, canonical);
    const config = await client.getSmallBlob(ref.repository, manifest.config.digest, manifest.config.size);
    await staging.putBlob(config, manifest.config.digest);
    const labels = readLabels(parseJSON(config, "image config"), manifest.annotations, canonical);
    const names = new Set<string>();
    let unpacked = 0;
    for (const layer of layers) {
      const f = await staging.openBlob(layer.digest);
      try {
        await client.getBlob(ref.repository, layer.digest, (c) => writeAll(f, c), {
          size: layer.size,
          onProgress: (done, total) => s.progress({ phase: "blob", digest: layer.digest, done, total }),
        });
      } finally {
        f.close();
      }
      s.progress({ phase: "verify", what: `layer ${layer.digest}` });
      const file = await Deno.open(staging.blobPath(layer.digest));
      unpacked += await readLayerObjects(
        file.readable,
        isLayerType(layer.mediaType)!,
        s.config.maxUnpackedBytes - unpacked,
        async (name, data) => {
          await staging.writeObject(digest, name, data);
          names.add(name);
        },
        `layer ${layer.digest} of ${canonical}`,
      );
    }
    const main = mainObject([...names], labels.filename, canonical);
    const { manifests, sigs } = await fetchSignatures(s, client, ref.repository, digests, staging);
    s.progress({ phase: "verify", what: "signature" });
    const signature = verifySignatures(sigs, digests, s.trust, canonical);
    await staging.commit({
      digest,
      indexDigest,
      url: canonical,
      signatureManifests: manifests,
      pulledAt: new Date().toISOString(),
    }, canonical);
    s.progress({ phase: "done", digest });
    return {
      url: canonical,
      digest,
      objectPath: s.cache.objectPath(digest, main),
      objects: Object.fromEntries([...names].map((n) => [n, s.cache.objectPath(digest, n)])),
      programs: labels.programs,
      maps: labels.maps,
      signature,
      fromCache: false,
    };
  } finally {
    await staging.discard();
  }
}

/**
 * Serves an image from the cache after verifying everything again: the manifest, config and layers hash
 * to their digests, the extracted objects equal what the layers hold, the signatures still satisfy the
 * policy. A changed file is refused (cache_corrupt).
 */
export async function serveCached(
  s: PullSteps,
  ref: Reference,
  digest: string,
  fresh?: { sigs: CosignSignature[]; record: ImageRecord },
): Promise<PulledImage> {
  const record = fresh?.record ?? await s.cache.readRecord(digest);
  if (!record) throw new ImageError("not_cached", `image ${digest} is not in the cache`);
  const canonical = formatReference(ref);
  const digests = record.indexDigest ? [digest, record.indexDigest] : [digest];
  checkAllowed(s.allow, ref, digests);
  s.progress({ phase: "verify", what: "cache" });
  const manifest = parseManifest(await s.cache.readBlob(digest), `cached manifest ${digest}`);
  const config = parseJSON(await s.cache.readBlob(manifest.config.digest), "cached image config");
  const labels = readLabels(config, manifest.annotations, canonical);
  const names = await s.cache.verifyObjects(digest, checkLayers(s.config, manifest, canonical), {
    maxUnpackedBytes: s.config.maxUnpackedBytes,
  });
  const main = mainObject(names, labels.filename, canonical);
  const sigs = fresh?.sigs ?? await signaturesFromCache(s.cache, record);
  const signature = verifySignatures(sigs, digests, s.trust, canonical);
  await s.cache.touch(digest);
  s.progress({ phase: "done", digest });
  return {
    url: canonical,
    digest,
    objectPath: s.cache.objectPath(digest, main),
    objects: Object.fromEntries(names.map((n) => [n, s.cache.objectPath(digest, n)])),
    programs: labels.programs,
    maps: labels.maps,
    signature,
    fromCache: !fresh,
  };
}

/** Whether the cached content of an image still verifies (a damaged cache is repaired by a fresh pull). */
async function cacheIntact(s: PullSteps, digest: string): Promise<boolean> {
  try {
    const manifest = parseManifest(await s.cache.readBlob(digest), `cached manifest ${digest}`);
    await s.cache.readBlob(manifest.config.digest);
    await s.cache.verifyObjects(digest, checkLayers(s.config, manifest, digest), {
      maxUnpackedBytes: s.config.maxUnpackedBytes,
    });
    return true;
  } catch {
    return false;
  }
}

/** The layers of a bytecode image: at least one, at most maxLayers, each a tar layer. */
function checkLayers(config: ImageStoreConfigParsed, manifest: ImageManifest, what: string): Descriptor[] {
  const layers = manifest.layers;
  if (layers.length === 0) throw new ImageError("bad_image", `${what}: image has no layers`);
  if (layers.length > config.maxLayers) {
    throw new ImageError(
      "too_large",
      `${what}: ${layers.length} layers, more than the limit of ${config.maxLayers}`,
    );
  }
  for (const l of layers) {
    if (!isLayerType(l.mediaType)) {
      throw new ImageError("bad_image", `${what}: layer media type ${shown(l.mediaType)} is not a tar layer`);
    }
  }
  return layers;
}

function mainObject(names: string[], filename: string | undefined, what: string): string {
  if (names.length === 0) throw new ImageError("bad_image", `${what}: no .o file at the root of the image`);
  if (filename) {
    if (!names.includes(filename)) {
      throw new ImageError(
        "bad_image",
        `${what}: label io.ebpf.filename names ${shown(filename)}, not in the image`,
      );
    }
    return filename;
  }
  return [...names].sort()[0];
}

/** The cosign signatures of each of `digests` (tag sha256-<hex>.sig), staged for the cache. */
async function fetchSignatures(
  s: PullSteps,
  client: RegistryClient,
  repo: string,
  digests: string[],
  staging: Staging,
): Promise<{ manifests: string[]; sigs: CosignSignature[] }> {
  const manifests: string[] = [];
  const sigs: CosignSignature[] = [];
  for (const digest of digests) {
    const tag = `sha256-${digest.slice(7)}.sig`;
    let m;
    try {
      m = await client.getManifest(repo, tag, [MT.ociManifest, MT.dockerManifest]);
    } catch (e) {
      if (e instanceof ImageError && e.code === "not_found") continue;
      throw e;
    }
    await staging.putBlob(m.bytes, m.digest);
    manifests.push(m.digest);
    const layers = parseManifest(m.bytes, `signature manifest ${tag}`).layers;
    if (layers.length > s.config.maxLayers) {
      throw new ImageError("too_large", `signature manifest ${tag}: more than ${s.config.maxLayers} layers`);
    }
    for (const l of layers) {
      if (l.mediaType !== MT.cosignPayload) continue;
      const payload = await client.getSmallBlob(repo, l.digest, l.size);
      await staging.putBlob(payload, l.digest);
      sigs.push({ payload, annotations: l.annotations ?? {} });
    }
  }
  return { manifests, sigs };
}

async function signaturesFromCache(cache: ImageCache, record: ImageRecord): Promise<CosignSignature[]> {
  const sigs: CosignSignature[] = [];
  for (const d of record.signatureManifests) {
    const manifest = parseManifest(await cache.readBlob(d), "cached signature manifest");
    for (const l of manifest.layers) {
      if (l.mediaType !== MT.cosignPayload) continue;
      sigs.push({ payload: await cache.readBlob(l.digest), annotations: l.annotations ?? {} });
    }
  }
  return sigs;
}
