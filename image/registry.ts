/**
 * A small client for the OCI distribution API (registry API v2): manifests and blobs by tag or digest,
 * uploads, and the auth flows registries use (anonymous, bearer token from the challenge's realm, basic).
 * Every byte that comes back under a digest is checked against it; sizes are capped; realms and redirects
 * are followed only as image/egress.ts allows; failures never quote what the server sent.
 *
 * @example
 * ```ts
 * const m = await client.getManifest("bpfd-bytecode/xdp_pass", "latest");
 * ```
 * @module
 */
import { createHash } from "node:crypto";
import { ImageError } from "./errors.ts";
import { concat, readCapped, RegistryTransport, type TransportOptions } from "./transport.ts";

export const MT = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  cosignPayload: "application/vnd.dev.cosign.simplesigning.v1+json",
} as const;

export const MANIFEST_TYPES = [MT.ociManifest, MT.dockerManifest, MT.ociIndex, MT.dockerList];

/** How to reach a registry, and the largest manifest and blob accepted. */
export interface RegistryOptions extends TransportOptions {
  maxManifestBytes: number;
  maxBlobBytes: number;
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Uint8Array;
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

export function digestOf(data: Uint8Array | string): string {
  return `sha256:${sha256Hex(data)}`;
}

export function assertDigest(digest: string, what: string): string {
  if (!/^sha256:[a-f0-9]{64}$/.test(digest)) {
    throw new ImageError("bad_image", `${what}: unsupported or malformed digest ${JSON.stringify(digest)}`);
  }
  return digest.slice(7);
}

/** The registry API: manifests and blobs by tag or digest, uploads. */
export class RegistryClient {
  readonly registry: string;
  readonly base: string;
  #http: RegistryTransport;
  #opts: RegistryOptions;

  constructor(registry: string, opts: RegistryOptions) {
    this.#http = new RegistryTransport(registry, opts);
    this.#opts = opts;
    this.registry = registry;
    this.base = this.#http.base;
  }

  /** A request to /v2/... that answers auth challenges once. `scope` is e.g. "repository:x:pull". */
  request(
    method: string,
    path: string,
    scope: string,
    init: { headers?: Record<string, string>; body?: BodyInit; blob?: boolean } = {},
  ): Promise<Response> {
    return this.#http.request(method, path, scope, init);
  }

  /** Throws for a failed answer, by status only: the body is never read nor echoed. */
  async #fail(res: Response, what: string): Promise<never> {
    await res.body?.cancel();
    const answered = `registry ${this.registry} answered ${res.status} for ${what}`;
    if (res.status === 404) throw new ImageError("not_found", `${answered}: not found`);
    if (res.status === 403) {
      throw new ImageError("unauthorized", `${answered}: access denied`, { field: "auth" });
    }
    throw new ImageError("registry_error", answered);
  }

  /** GET a manifest by tag or digest; the digest is computed from the bytes and checked. */
  async getManifest(repo: string, ref: string, accept: string[] = MANIFEST_TYPES): Promise<FetchedManifest> {
    const what = `manifest ${this.registry}/${repo}${ref.startsWith("sha256:") ? "@" : ":"}${ref}`;
    const res = await this.request("GET", `/v2/${repo}/manifests/${ref}`, `repository:${repo}:pull`, {
      headers: { accept: accept.join(", ") },
    });
    if (!res.ok) await this.#fail(res, what);
    const bytes = await readCapped(res, this.#opts.maxManifestBytes, what);
    const digest = digestOf(bytes);
    if (ref.startsWith("sha256:") && ref !== digest) {
      throw new ImageError("digest_mismatch", `${what}: content hashes to ${digest}, not ${ref}`);
    }
    const header = res.headers.get("docker-content-digest");
    if (header && header.startsWith("sha256:") && header !== digest) {
      throw new ImageError(
        "digest_mismatch",
        `${what}: content hashes to ${digest}, registry says ${header}`,
      );
    }
    let mediaType = (res.headers.get("content-type") ?? "").split(";")[0].trim();
    try {
      const parsed = JSON.parse(new TextDecoder().decode(bytes));
      if (typeof parsed.mediaType === "string") mediaType = parsed.mediaType;
    } catch {
      throw new ImageError("bad_image", `${what}: not JSON`);
    }
    return { digest, mediaType, bytes };
  }

  /** HEAD a manifest: its digest, or undefined when the registry does not have it. */
  async headManifest(repo: string, ref: string): Promise<string | undefined> {
    const res = await this.request("HEAD", `/v2/${repo}/manifests/${ref}`, `repository:${repo}:pull`, {
      headers: { accept: MANIFEST_TYPES.join(", ") },
    });
    await res.body?.cancel();
    if (res.status === 404) return undefined;
    if (!res.ok) await this.#fail(res, `manifest ${this.registry}/${repo}:${ref}`);
    return res.headers.get("docker-content-digest") ?? undefined;
  }

  /**
   * GET a blob, streaming it to `sink` while hashing; throws digest_mismatch if the bytes do not hash to
   * `digest`, too_large past `limit` or the declared `size`.
   */
  async getBlob(
    repo: string,
    digest: string,
    sink: (chunk: Uint8Array) => void | Promise<void>,
    opts: { limit?: number; size?: number; onProgress?: (done: number, total: number) => void } = {},
  ): Promise<number> {
    const hex = assertDigest(digest, `blob of ${repo}`);
    const what = `blob ${digest.slice(0, 19)}… of ${this.registry}/${repo}`;
    const limit = opts.limit ?? this.#opts.maxBlobBytes;
    if (opts.size !== undefined && opts.size > limit) {
      throw new ImageError("too_large", `${what}: ${opts.size} bytes, more than the limit of ${limit}`);
    }
    const res = await this.request("GET", `/v2/${repo}/blobs/${digest}`, `repository:${repo}:pull`, {
      blob: true,
    });
    if (!res.ok) await this.#fail(res, what);
    const total = Number(res.headers.get("content-length") ?? opts.size ?? 0);
    if (total > limit) {
      await res.body?.cancel();
      throw new ImageError("too_large", `${what}: ${total} bytes, more than the limit of ${limit}`);
    }
    const h = createHash("sha256");
    let n = 0;
    const reader = res.body!.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        n += value.length;
        if (n > limit) throw new ImageError("too_large", `${what}: more than the limit of ${limit} bytes`);
        if (opts.size !== undefined && n > opts.size) {
          throw new ImageError(
            "too_large",
            `${what}: more than the ${opts.size} bytes the manifest declares`,
          );
        }
        h.update(value);
        await sink(value);
        opts.onProgress?.(n, total);
      }
    } finally {
      reader.releaseLock();
      await res.body?.cancel().catch(() => {});
    }
    const got = h.digest("hex");
    if (got !== hex) {
      throw new ImageError("digest_mismatch", `${what}: content hashes to sha256:${got}, not ${digest}`);
    }
    if (opts.size !== undefined && n !== opts.size) {
      throw new ImageError("digest_mismatch", `${what}: ${n} bytes, the manifest says ${opts.size}`);
    }
    return n;
  }

  /** GET a small blob into memory (configs, signature payloads). */
  async getSmallBlob(repo: string, digest: string, size?: number): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    const n = await this.getBlob(repo, digest, (c) => {
      chunks.push(c);
    }, { limit: this.#opts.maxManifestBytes, size });
    return concat(chunks, n);
  }

  async hasBlob(repo: string, digest: string, scope = `repository:${repo}:pull,push`): Promise<boolean> {
    const res = await this.request("HEAD", `/v2/${repo}/blobs/${digest}`, scope);
    await res.body?.cancel();
    if (res.status === 404) return false;
    if (!res.ok) await this.#fail(res, `blob ${digest} of ${repo}`);
    return true;
  }

  /** Monolithic upload (POST then PUT), skipped if the registry already has the blob. */
  async pushBlob(repo: string, digest: string, data: Uint8Array): Promise<"exists" | "uploaded"> {
    const scope = `repository:${repo}:pull,push`;
    if (await this.hasBlob(repo, digest, scope)) return "exists";
    const start = await this.request("POST", `/v2/${repo}/blobs/uploads/`, scope);
    await start.body?.cancel();
    if (start.status !== 202) await this.#fail(start, `upload to ${repo}`);
    const loc = start.headers.get("location");
    if (!loc) throw new ImageError("registry_error", `registry ${this.registry}: upload without Location`);
    const u = new URL(loc, this.base);
    if (u.origin !== new URL(this.base).origin) {
      throw new ImageError("registry_error", `registry ${this.registry}: upload location on another host`);
    }
    u.searchParams.set("digest", digest);
    const put = await this.request("PUT", u.href, scope, {
      headers: { "content-type": "application/octet-stream", "content-length": String(data.length) },
      body: data as BodyInit,
    });
    await put.body?.cancel();
    if (put.status !== 201) await this.#fail(put, `upload of ${digest} to ${repo}`);
    return "uploaded";
  }

  async pushManifest(repo: string, ref: string, mediaType: string, bytes: Uint8Array): Promise<string> {
    const res = await this.request("PUT", `/v2/${repo}/manifests/${ref}`, `repository:${repo}:pull,push`, {
      headers: { "content-type": mediaType },
      body: bytes as BodyInit,
    });
    await res.body?.cancel();
    if (res.status !== 201) await this.#fail(res, `manifest ${repo}:${ref}`);
    return digestOf(bytes);
  }
}
