// The image store behind ctx.images: resolves a reference under the pull policy, downloads and verifies an
// image into the content-addressed cache, checks the allow-list and the signature policy, and hands back
// the verified .o path with the programs and maps its labels declare. A failed pull leaves nothing in the
// cache.
import { Buffer } from "node:buffer";
import { type CosignSignature, loadTrust, type Trust, verifySignatures } from "./cosign.ts";
import { ImageCache, type ImageRecord, type Staging } from "./cache.ts";
import { type CredentialMap, lookupCredential, parseDockerConfig } from "./credentials.ts";
import { ImageError } from "./errors.ts";
import {
  choosePlatform,
  type ImageManifest,
  isLayerType,
  parseIndex,
  parseJSON,
  parseManifest,
  readLabels,
  readLayerObjects,
} from "./format.ts";
import { formatReference, parseReference, type Reference } from "./reference.ts";
import { MT, RegistryClient, sha256Hex } from "./registry.ts";
import {
  type ImageSource,
  ImageSource as ImageSourceSchema,
  type ImageSourceParsed,
  type ImageStore as ImageStoreInterface,
  ImageStoreConfig,
  type ImageStoreConfigParsed,
  type PulledImage,
  type PullOptions,
  type SignatureResult,
} from "../model/image.ts";

export class ImageStore implements ImageStoreInterface {
  readonly config: ImageStoreConfigParsed;
  readonly cache: ImageCache;
  #trust?: Promise<Trust>;
  #httpClient?: Promise<Deno.HttpClient | undefined>;
  #authFile?: Promise<CredentialMap | undefined>;
  #inflight = new Map<string, Promise<PulledImage>>();

  constructor(config: Partial<ImageStoreConfigParsed> | Record<string, unknown> = {}) {
    const parsed = ImageStoreConfig.safeParse(config);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new ImageError("bad_config", `image config ${i.path.join(".") || "(root)"}: ${i.message}`, {
        field: i.path.join("."),
      });
    }
    this.config = parsed.data;
    this.cache = new ImageCache(this.config.cacheDir);
  }

  /** Loads keys, trusted root and CA files now, so that a bad configuration fails at start-up. */
  async init(): Promise<void> {
    await this.cache.init();
    await this.#getTrust();
    await this.#getHttpClient();
  }

  close(): void {
    this.#httpClient?.then((c) => c?.close()).catch(() => {});
    this.#httpClient = undefined;
  }

  #getTrust(): Promise<Trust> {
    return this.#trust ??= loadTrust(this.config.signature);
  }

  #getHttpClient(): Promise<Deno.HttpClient | undefined> {
    return this.#httpClient ??= (async () => {
      if (this.config.caFiles.length === 0) return undefined;
      const caCerts: string[] = [];
      for (const f of this.config.caFiles) {
        try {
          caCerts.push(await Deno.readTextFile(f));
        } catch (e) {
          throw new ImageError("bad_config", `caFiles: cannot read ${f}: ${(e as Error).message}`, {
            field: "caFiles",
          });
        }
      }
      return Deno.createHttpClient({ caCerts });
    })();
  }

  #getAuthFile(): Promise<CredentialMap | undefined> {
    return this.#authFile ??= (async () => {
      if (!this.config.authFile) return undefined;
      let text: string;
      try {
        text = await Deno.readTextFile(this.config.authFile);
      } catch (e) {
        throw new ImageError(
          "bad_config",
          `authFile: cannot read ${this.config.authFile}: ${(e as Error).message}`,
          {
            field: "authFile",
          },
        );
      }
      return parseDockerConfig(text, "authFile");
    })();
  }

  /** A registry client for a reference, with the credentials of the request or the auth file. */
  async client(ref: Reference, src?: ImageSource, opts?: PullOptions): Promise<RegistryClient> {
    let credential;
    const auth = src?.auth;
    if (auth && "username" in auth) credential = { username: auth.username, password: auth.password };
    else if (auth && "dockerConfigJson" in auth) {
      credential = lookupCredential(
        parseDockerConfig(auth.dockerConfigJson, "auth.dockerConfigJson"),
        ref.registry,
      );
    } else if (auth && "secretRef" in auth) {
      if (!opts?.resolveSecret) {
        throw new ImageError("bad_auth", "auth.secretRef: this runtime cannot read Kubernetes secrets", {
          field: "auth.secretRef",
        });
      }
      const text = await opts.resolveSecret(auth.secretRef);
      credential = lookupCredential(parseDockerConfig(text, "auth.secretRef"), ref.registry);
    } else credential = lookupCredential(await this.#getAuthFile(), ref.registry);
    return new RegistryClient(ref.registry, {
      insecure: this.config.insecureRegistries.includes(ref.registry),
      httpClient: await this.#getHttpClient(),
      credential,
      timeoutMs: this.config.timeoutMs,
      maxManifestBytes: this.config.maxManifestBytes,
      maxBlobBytes: this.config.maxLayerBytes,
    });
  }

  #allowedByPrefix(ref: Reference, url: string): boolean {
    const allow = this.config.allow;
    if (allow.length === 0) return true;
    const canonical = formatReference(ref);
    return allow.some((a) => !a.startsWith("sha256:") && (canonical.startsWith(a) || url.startsWith(a)));
  }

  #checkAllowed(ref: Reference, url: string, digests: string[]): void {
    if (this.#allowedByPrefix(ref, url)) return;
    if (digests.some((d) => this.config.allow.includes(d))) return;
    throw new ImageError(
      "not_allowed",
      `image ${formatReference(ref)} (${digests[0] ?? "digest unknown"}) is not allowed: neither its name ` +
        `nor its digest is on the allow-list`,
    );
  }

  async pull(srcIn: ImageSource, opts: PullOptions = {}): Promise<PulledImage> {
    const parsed = ImageSourceSchema.safeParse(srcIn);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      const field = i.path.join(".") || "url";
      throw new ImageError(
        field.startsWith("auth") ? "bad_auth" : "bad_reference",
        `${field}: ${i.message}`,
        {
          field,
        },
      );
    }
    const src = parsed.data;
    const ref = parseReference(src.url);
    if (src.auth && "dockerConfigJson" in src.auth) {
      parseDockerConfig(src.auth.dockerConfigJson, "auth.dockerConfigJson");
    }
    const key = `${formatReference(ref)} ${src.pullPolicy} ${JSON.stringify(src.auth ?? null)}`;
    const running = this.#inflight.get(key);
    if (running) return await running;
    const p = this.#pull(src, ref, opts).finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return await p;
  }

  async #pull(src: ImageSourceParsed, ref: Reference, opts: PullOptions): Promise<PulledImage> {
    const progress = opts.onProgress ?? (() => {});
    await this.cache.init();
    const trust = await this.#getTrust();
    const canonical = formatReference(ref);
    progress({ phase: "resolve", url: canonical });
    if (!this.#allowedByPrefix(ref, src.url) && !(ref.digest && this.config.allow.includes(ref.digest))) {
      // Only a digest on the allow-list can still admit it; that needs the digest first.
      if (!this.config.allow.some((a) => a.startsWith("sha256:"))) this.#checkAllowed(ref, src.url, []);
    }
    const cachedDigest = await this.cache.resolveRef(canonical) ?? ref.digest;
    if (src.pullPolicy === "Never" || src.pullPolicy === "IfNotPresent") {
      if (cachedDigest && await this.cache.readRecord(cachedDigest)) {
        progress({ phase: "cached", digest: cachedDigest });
        return await this.#fromCache(ref, src.url, cachedDigest, trust, undefined, progress);
      }
      if (src.pullPolicy === "Never") {
        throw new ImageError(
          "not_cached",
          `image ${canonical} is not in the cache and pullPolicy is Never`,
        );
      }
    }
    const client = await this.client(ref, src, opts);
    return await this.#fetch(client, ref, src.url, trust, progress);
  }

  async #fetchSignatures(
    client: RegistryClient,
    repo: string,
    digest: string,
    staging: Staging,
  ): Promise<{ manifestDigest?: string; sigs: CosignSignature[] }> {
    const tag = `sha256-${digest.slice(7)}.sig`;
    let m;
    try {
      m = await client.getManifest(repo, tag, [MT.ociManifest, MT.dockerManifest]);
    } catch (e) {
      if (e instanceof ImageError && e.code === "not_found") return { sigs: [] };
      throw e;
    }
    await staging.putBlob(m.bytes, m.digest);
    const manifest = parseManifest(m.bytes, `signature manifest ${tag}`);
    const sigs: CosignSignature[] = [];
    for (const l of manifest.layers) {
      if (l.mediaType !== MT.cosignPayload) continue;
      const payload = await client.getSmallBlob(repo, l.digest, l.size);
      await staging.putBlob(payload, l.digest);
      sigs.push({ payload, annotations: l.annotations ?? {} });
    }
    return { manifestDigest: m.digest, sigs };
  }

  async #signaturesFromCache(record: ImageRecord): Promise<CosignSignature[]> {
    const sigs: CosignSignature[] = [];
    for (const d of record.signatureManifests) {
      const manifest = parseManifest(await this.cache.readBlob(d), "cached signature manifest");
      for (const l of manifest.layers) {
        if (l.mediaType !== MT.cosignPayload) continue;
        sigs.push({ payload: await this.cache.readBlob(l.digest), annotations: l.annotations ?? {} });
      }
    }
    return sigs;
  }

  async #fetch(
    client: RegistryClient,
    ref: Reference,
    url: string,
    trust: Trust,
    progress: NonNullable<PullOptions["onProgress"]>,
  ): Promise<PulledImage> {
    const canonical = formatReference(ref);
    const staging = await this.cache.stage();
    try {
      let top = await client.getManifest(ref.repository, ref.digest ?? ref.tag!);
      let indexDigest: string | undefined;
      if (top.mediaType === MT.ociIndex || top.mediaType === MT.dockerList) {
        indexDigest = top.digest;
        await staging.putBlob(top.bytes, top.digest);
        const index = parseIndex(top.bytes, `index ${canonical}`);
        const { os, architecture } = this.config.platform;
        const d = choosePlatform(index, os, architecture, `index ${canonical}`);
        top = await client.getManifest(ref.repository, d.digest);
      } else if (top.mediaType !== MT.ociManifest && top.mediaType !== MT.dockerManifest) {
        throw new ImageError(
          "bad_image",
          `${canonical}: unsupported manifest media type ${top.mediaType || "(none)"}`,
        );
      }
      const digest = top.digest;
      const digests = indexDigest ? [digest, indexDigest] : [digest];
      progress({ phase: "manifest", digest });
      this.#checkAllowed(ref, url, digests);
      const record = await this.cache.readRecord(digest);
      if (record && await this.#cacheIntact(digest)) {
        // Content already cached: fetch only the signatures again (they may have changed).
        const sigManifests: string[] = [];
        const sigs: CosignSignature[] = [];
        for (const d of digests) {
          const s = await this.#fetchSignatures(client, ref.repository, d, staging);
          if (s.manifestDigest) sigManifests.push(s.manifestDigest);
          sigs.push(...s.sigs);
        }
        const fresh: ImageRecord = {
          ...record,
          indexDigest,
          url: canonical,
          signatureManifests: sigManifests,
        };
        const result = await this.#fromCache(ref, url, digest, trust, { sigs, record: fresh }, progress);
        await staging.commit(fresh, canonical);
        return result;
      }
      await staging.putBlob(top.bytes, digest);
      const manifest = parseManifest(top.bytes, `manifest ${canonical}`);
      const config = await client.getSmallBlob(ref.repository, manifest.config.digest, manifest.config.size);
      await staging.putBlob(config, manifest.config.digest);
      const labels = readLabels(parseJSON(config, "image config"), manifest.annotations, canonical);
      const objects = new Map<string, Uint8Array>();
      for (const layer of this.#layers(manifest, canonical)) {
        const f = await staging.openBlob(layer.digest);
        try {
          await client.getBlob(ref.repository, layer.digest, async (c) => {
            await f.write(c);
          }, {
            size: layer.size,
            onProgress: (done, total) => progress({ phase: "blob", digest: layer.digest, done, total }),
          });
        } finally {
          f.close();
        }
        progress({ phase: "verify", what: `layer ${layer.digest}` });
        const file = await Deno.open(staging.blobPath(layer.digest));
        await readLayerObjects(
          file.readable,
          isLayerType(layer.mediaType)!,
          this.config.maxLayerBytes,
          (name, bytes) => {
            objects.set(name, bytes);
          },
          `layer ${layer.digest} of ${canonical}`,
        );
      }
      const main = this.#mainObject(objects, labels.filename, canonical);
      const sigManifests: string[] = [];
      const sigs: CosignSignature[] = [];
      for (const d of digests) {
        const s = await this.#fetchSignatures(client, ref.repository, d, staging);
        if (s.manifestDigest) sigManifests.push(s.manifestDigest);
        sigs.push(...s.sigs);
      }
      progress({ phase: "verify", what: "signature" });
      const signature = verifySignatures(sigs, digests, trust, canonical);
      for (const [name, bytes] of objects) await staging.putObject(digest, name, bytes);
      await staging.commit({
        digest,
        indexDigest,
        url: canonical,
        signatureManifests: sigManifests,
        pulledAt: new Date().toISOString(),
      }, canonical);
      progress({ phase: "done", digest });
      return {
        url: canonical,
        digest,
        objectPath: this.cache.objectPath(digest, main),
        objects: Object.fromEntries([...objects.keys()].map((n) => [n, this.cache.objectPath(digest, n)])),
        programs: labels.programs,
        maps: labels.maps,
        signature,
        fromCache: false,
      };
    } finally {
      await staging.discard();
    }
  }

  /** Whether the cached content of an image still verifies (a damaged cache is repaired by a fresh pull). */
  async #cacheIntact(digest: string): Promise<boolean> {
    try {
      const manifest = parseManifest(await this.cache.readBlob(digest), `cached manifest ${digest}`);
      await this.cache.readBlob(manifest.config.digest);
      for (const layer of manifest.layers) {
        await readLayerObjects(
          this.cache.readBlobStream(layer.digest),
          isLayerType(layer.mediaType) ?? "tar",
          this.config.maxLayerBytes,
          async (name, bytes) => {
            const onDisk = await Deno.readFile(this.cache.objectPath(digest, name));
            if (!Buffer.from(onDisk).equals(Buffer.from(bytes))) throw new Error("changed");
          },
          "cached layer",
        );
      }
      return true;
    } catch {
      return false;
    }
  }

  #layers(manifest: ImageManifest, what: string) {
    if (manifest.layers.length === 0) throw new ImageError("bad_image", `${what}: image has no layers`);
    for (const l of manifest.layers) {
      if (!isLayerType(l.mediaType)) {
        throw new ImageError("bad_image", `${what}: layer media type ${l.mediaType} is not a tar layer`);
      }
    }
    return manifest.layers;
  }

  #mainObject(objects: Map<string, Uint8Array>, filename: string | undefined, what: string): string {
    if (objects.size === 0) throw new ImageError("bad_image", `${what}: no .o file at the root of the image`);
    if (filename) {
      if (!objects.has(filename)) {
        throw new ImageError(
          "bad_image",
          `${what}: label io.ebpf.filename names ${filename}, not in the image`,
        );
      }
      return filename;
    }
    return [...objects.keys()].sort()[0];
  }

  /**
   * Serves an image from the cache after verifying everything again: the manifest, config and layers hash
   * to their digests, the extracted objects equal what the layers hold, the signatures still satisfy the
   * policy. A changed file is refused (cache-corrupt).
   */
  async #fromCache(
    ref: Reference,
    url: string,
    digest: string,
    trust: Trust,
    fresh: { sigs: CosignSignature[]; record: ImageRecord } | undefined,
    progress: NonNullable<PullOptions["onProgress"]>,
  ): Promise<PulledImage> {
    const record = fresh?.record ?? await this.cache.readRecord(digest);
    if (!record) throw new ImageError("not_cached", `image ${digest} is not in the cache`);
    const canonical = formatReference(ref);
    const digests = record.indexDigest ? [digest, record.indexDigest] : [digest];
    this.#checkAllowed(ref, url, digests);
    progress({ phase: "verify", what: "cache" });
    const manifest = parseManifest(await this.cache.readBlob(digest), `cached manifest ${digest}`);
    const config = parseJSON(await this.cache.readBlob(manifest.config.digest), "cached image config");
    const labels = readLabels(config, manifest.annotations, canonical);
    const names: string[] = [];
    for (const layer of this.#layers(manifest, canonical)) {
      await readLayerObjects(
        this.cache.readBlobStream(layer.digest),
        isLayerType(layer.mediaType)!,
        this.config.maxLayerBytes,
        async (name, bytes) => {
          const p = this.cache.objectPath(digest, name);
          let onDisk: Uint8Array;
          try {
            onDisk = await Deno.readFile(p);
          } catch {
            throw new ImageError("cache_corrupt", `cache: object ${p} is missing`);
          }
          if (!Buffer.from(onDisk).equals(Buffer.from(bytes))) {
            throw new ImageError(
              "cache_corrupt",
              `cache: object ${p} was changed on disk (sha256 ${
                sha256Hex(onDisk).slice(0, 16)
              }…, image has ` +
                `${sha256Hex(bytes).slice(0, 16)}…); refusing it`,
            );
          }
          names.push(name);
        },
        `cached layer ${layer.digest}`,
      );
    }
    const objects = new Map(names.map((n) => [n, new Uint8Array()]));
    const main = this.#mainObject(objects, labels.filename, canonical);
    const sigs = fresh?.sigs ?? await this.#signaturesFromCache(record);
    const signature: SignatureResult = verifySignatures(sigs, digests, trust, canonical);
    progress({ phase: "done", digest });
    return {
      url: canonical,
      digest,
      objectPath: this.cache.objectPath(digest, main),
      objects: Object.fromEntries(names.map((n) => [n, this.cache.objectPath(digest, n)])),
      programs: labels.programs,
      maps: labels.maps,
      signature,
      fromCache: !fresh,
    };
  }
}

/**
 * The runtime's image store from its `images` configuration (undefined: defaults, cache under
 * /var/lib/bpfd/images). Loads keys, trusted root and CA files at once, so a bad policy fails start-up.
 */
export async function createImageStore(config?: Record<string, unknown>): Promise<ImageStore> {
  const store = new ImageStore(config ?? {});
  await store.init();
  return store;
}
