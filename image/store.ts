/**
 * The image store behind ctx.images: resolves a reference under the pull policy, has image/pull.ts download
 * and verify it into the content-addressed cache (allow-list, limits, signature policy) or serve it from
 * there, and evicts old images after pulls that say which images are in use.
 *
 * @example
 * ```ts
 * const store = await createImageStore({ cacheDir: "/var/lib/bpfd/images" });
 * const pulled = await store.pull({ url: "quay.io/bpfd-bytecode/xdp_pass:latest" });
 * ```
 * @module
 */
import { allowedByName, type AllowList, hasDigestEntries, parseAllowList } from "./allow.ts";
import { loadTrust, type Trust } from "./cosign.ts";
import { ImageCache } from "./cache.ts";
import { type CredentialMap, lookupCredential, parseDockerConfig } from "./credentials.ts";
import { ImageError } from "./errors.ts";
import { DAY_MS, evictImages, type EvictionReport } from "./evict.ts";
import { checkAllowed, downloadImage, type PullSteps, serveCached } from "./pull.ts";
import { formatReference, parseReference, type Reference } from "./reference.ts";
import { RegistryClient } from "./registry.ts";
import {
  type ImageSource,
  ImageSource as ImageSourceSchema,
  type ImageSourceParsed,
  type ImageStore as ImageStoreInterface,
  ImageStoreConfig,
  type ImageStoreConfigParsed,
  type PulledImage,
  type PullOptions,
} from "../model/image.ts";

/** Eviction runs after every pull that wrote to the cache, and at least this often after the others. */
const EVICT_EVERY_MS = 60 * 60 * 1000;

export class ImageStore implements ImageStoreInterface {
  readonly config: ImageStoreConfigParsed;
  readonly cache: ImageCache;
  #trust?: Promise<Trust>;
  #httpClient?: Promise<Deno.HttpClient | undefined>;
  #authFile?: Promise<CredentialMap | undefined>;
  #inflight = new Map<string, Promise<PulledImage>>();
  #allow: AllowList;
  /** Pulls running now; eviction waits for none. */
  #active = 0;
  #evicting?: Promise<unknown>;
  #lastEviction = 0;

  constructor(config: Partial<ImageStoreConfigParsed> | Record<string, unknown> = {}) {
    const parsed = ImageStoreConfig.safeParse(config);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new ImageError("bad_config", `image config ${i.path.join(".") || "(root)"}: ${i.message}`, {
        field: i.path.join("."),
      });
    }
    this.config = parsed.data;
    this.#allow = parseAllowList(this.config.allow);
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
      realmHosts: this.config.realmHosts,
      redirectHosts: this.config.redirectHosts,
    });
  }

  /**
   * The digest `srcIn` names now: its own digest, or the registry's answer to a manifest HEAD for its tag
   * (the index's digest for a manifest list). Cheap enough for every resync of an `Always` image.
   */
  async resolve(srcIn: ImageSource, opts: PullOptions = {}): Promise<string> {
    const { src, ref } = this.#parse(srcIn);
    if (ref.digest) return ref.digest;
    const digest = await (await this.client(ref, src, opts)).headManifest(ref.repository, ref.tag!);
    if (!digest) throw new ImageError("not_found", `image ${formatReference(ref)} not found in the registry`);
    return digest;
  }

  #parse(srcIn: ImageSource): { src: ImageSourceParsed; ref: Reference } {
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
    return { src, ref };
  }

  async pull(srcIn: ImageSource, opts: PullOptions = {}): Promise<PulledImage> {
    const { src, ref } = this.#parse(srcIn);
    const key = `${formatReference(ref)} ${src.pullPolicy} ${JSON.stringify(src.auth ?? null)}`;
    let pulled: PulledImage;
    this.#active++;
    try {
      while (this.#evicting) await this.#evicting;
      let p = this.#inflight.get(key);
      if (!p) {
        p = this.#pull(src, ref, opts).finally(() => this.#inflight.delete(key));
        this.#inflight.set(key, p);
      }
      pulled = await p;
    } finally {
      this.#active--;
    }
    if (opts.inUse && (!pulled.fromCache || Date.now() - this.#lastEviction > EVICT_EVERY_MS)) {
      await this.evict(new Set(opts.inUse())).catch(() => {/* the cache stays larger until the next pull */});
    }
    return pulled;
  }

  /**
   * Evicts images unused for cacheMaxAgeDays, then the least recently used until the cache fits
   * cacheMaxBytes; never one in `inUse`. Does nothing (undefined) while a pull or an eviction runs.
   */
  async evict(inUse: ReadonlySet<string>, now = Date.now()): Promise<EvictionReport | undefined> {
    if (this.#active > 0 || this.#evicting) return undefined;
    this.#lastEviction = now;
    const run = this.cache.init().then(() =>
      evictImages(this.cache, {
        maxBytes: this.config.cacheMaxBytes,
        maxAgeMs: this.config.cacheMaxAgeDays * DAY_MS,
        inUse,
        now,
      })
    );
    this.#evicting = run.catch(() => {/* reported to the caller below */});
    try {
      return await run;
    } finally {
      this.#evicting = undefined;
    }
  }

  async #pull(src: ImageSourceParsed, ref: Reference, opts: PullOptions): Promise<PulledImage> {
    await this.cache.init();
    const steps: PullSteps = {
      cache: this.cache,
      config: this.config,
      allow: this.#allow,
      trust: await this.#getTrust(),
      progress: opts.onProgress ?? (() => {}),
    };
    const canonical = formatReference(ref);
    steps.progress({ phase: "resolve", url: canonical });
    // Refused by name now unless a digest on the allow-list could still admit it (that needs the digest).
    if (!allowedByName(this.#allow, ref) && !hasDigestEntries(this.#allow)) {
      checkAllowed(this.#allow, ref, []);
    }
    const cachedDigest = await this.cache.resolveRef(canonical) ?? ref.digest;
    if (src.pullPolicy === "Never" || src.pullPolicy === "IfNotPresent") {
      if (cachedDigest && await this.cache.readRecord(cachedDigest)) {
        steps.progress({ phase: "cached", digest: cachedDigest });
        return await serveCached(steps, ref, cachedDigest);
      }
      if (src.pullPolicy === "Never") {
        throw new ImageError("not_cached", `image ${canonical} is not in the cache and pullPolicy is Never`);
      }
    }
    return await downloadImage(steps, await this.client(ref, src, opts), ref);
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
