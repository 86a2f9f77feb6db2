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
import type { Credential } from "./credentials.ts";
import { ImageError } from "./errors.ts";
import { checkRealm, checkRedirect, type EgressRules, MAX_REDIRECTS } from "./egress.ts";
import { registryHost } from "./reference.ts";

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

export interface RegistryOptions {
  /** Plain HTTP instead of HTTPS. */
  insecure: boolean;
  /** Deno HTTP client carrying extra CA certificates, if any. */
  httpClient?: Deno.HttpClient;
  credential?: Credential;
  timeoutMs: number;
  maxManifestBytes: number;
  maxBlobBytes: number;
  /** Extra hosts allowed as bearer realms (image/egress.ts). */
  realmHosts?: string[];
  /** Hosts blob downloads may be redirected to; empty: any public HTTPS host (image/egress.ts). */
  redirectHosts?: string[];
}

/** Largest token server answer read, in bytes. */
const TOKEN_BYTES = 1024 * 1024;

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

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3];
  }
  return { scheme: m[1].toLowerCase(), params };
}

export class RegistryClient {
  readonly registry: string;
  readonly base: string;
  #opts: RegistryOptions;
  #rules: EgressRules;
  #tokens = new Map<string, string>();
  #basic = false;

  constructor(registry: string, opts: RegistryOptions) {
    this.registry = registry;
    this.#opts = opts;
    this.#rules = {
      registry,
      insecure: opts.insecure,
      realmHosts: opts.realmHosts,
      redirectHosts: opts.redirectHosts,
    };
    this.base = `${opts.insecure ? "http" : "https"}://${registryHost(registry)}`;
  }

  #basicHeader(): string | undefined {
    const c = this.#opts.credential;
    if (!c) return undefined;
    return "Basic " + btoa(String.fromCharCode(...new TextEncoder().encode(`${c.username}:${c.password}`)));
  }

  /**
   * One request, following redirects only as image/egress.ts allows (credentials never leave the
   * origin). A connection failure gives one message whatever the cause, so that error texts do not tell
   * closed, filtered and non-registry ports apart; the cause stays on the error for the CLI.
   */
  async #fetch(
    url: string,
    init: RequestInit & { headers?: Record<string, string> },
    follow: { redirects: boolean; blob?: boolean },
  ): Promise<Response> {
    const signal = init.signal ?? AbortSignal.timeout(this.#opts.timeoutMs);
    let target = new URL(url);
    let headers = init.headers;
    for (let hop = 0;; hop++) {
      let res: Response;
      try {
        res = await fetch(
          target,
          { ...init, headers, redirect: "manual", client: this.#opts.httpClient, signal } as RequestInit,
        );
      } catch (e) {
        throw new ImageError(
          "registry_unreachable",
          `registry ${this.registry} unreachable (no connection, TLS failure or no answer within ${this.#opts.timeoutMs} ms)`,
          { cause: e },
        );
      }
      const method = init.method ?? "GET";
      if (res.status < 300 || res.status > 399 || res.status === 304) return res;
      if (!follow.redirects || (method !== "GET" && method !== "HEAD")) return res;
      await res.body?.cancel();
      if (hop >= MAX_REDIRECTS) {
        throw new ImageError(
          "registry_error",
          `registry ${this.registry}: more than ${MAX_REDIRECTS} redirects`,
        );
      }
      const next = checkRedirect(target, res.headers.get("location"), { blob: !!follow.blob }, this.#rules);
      if (next.origin !== target.origin && headers?.authorization) {
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k !== "authorization"));
      }
      target = next;
    }
  }

  async #token(ch: Challenge, scope: string): Promise<string> {
    const key = `${ch.params.realm} ${ch.params.service ?? ""} ${scope}`;
    const cached = this.#tokens.get(key);
    if (cached) return cached;
    const realm = ch.params.realm;
    if (!realm) {
      throw new ImageError("registry_error", `registry ${this.registry}: bearer challenge without realm`);
    }
    const u = checkRealm(realm, this.#rules);
    if (ch.params.service) u.searchParams.set("service", ch.params.service);
    u.searchParams.set("scope", scope);
    const headers: Record<string, string> = {};
    const basic = this.#basicHeader();
    if (basic) headers.authorization = basic;
    const res = await this.#fetch(u.href, { headers }, { redirects: false });
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new ImageError(
        "unauthorized",
        this.#opts.credential
          ? `registry ${this.registry}: token server refused the credentials of user ${this.#opts.credential.username}`
          : `registry ${this.registry}: token server requires credentials and none were given`,
        { field: "auth" },
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new ImageError(
        "registry_error",
        `registry ${this.registry}: token server answered ${res.status}`,
      );
    }
    let body: { token?: string; access_token?: string };
    try {
      body = JSON.parse(new TextDecoder().decode(await this.#readCapped(res, TOKEN_BYTES, "token answer")));
    } catch (e) {
      if (e instanceof ImageError) throw e;
      throw new ImageError("registry_error", `registry ${this.registry}: token server answer is not JSON`);
    }
    const token = body.token ?? body.access_token;
    if (!token) {
      throw new ImageError("registry_error", `registry ${this.registry}: token server gave no token`);
    }
    this.#tokens.set(key, token);
    return token;
  }

  /** A request to /v2/... that answers auth challenges once. `scope` is e.g. "repository:x:pull". */
  async request(
    method: string,
    path: string,
    scope: string,
    init: { headers?: Record<string, string>; body?: BodyInit; blob?: boolean } = {},
  ): Promise<Response> {
    const url = path.startsWith("http") ? path : `${this.base}${path}`;
    const headers: Record<string, string> = { ...init.headers };
    const tokenKeyPrefix = scope;
    let auth: string | undefined;
    for (const [k, v] of this.#tokens) if (k.endsWith(` ${tokenKeyPrefix}`)) auth = `Bearer ${v}`;
    if (!auth && this.#basic) auth = this.#basicHeader();
    if (auth) headers.authorization = auth;
    const follow = { redirects: true, blob: init.blob };
    let res = await this.#fetch(url, { method, headers, body: init.body }, follow);
    if (res.status !== 401) return res;
    await res.body?.cancel();
    const ch = parseChallenge(res.headers.get("www-authenticate"));
    if (ch?.scheme === "bearer") {
      headers.authorization = `Bearer ${await this.#token(ch, scope)}`;
    } else if (ch?.scheme === "basic" && this.#opts.credential && !auth) {
      this.#basic = true;
      headers.authorization = this.#basicHeader()!;
    } else {
      throw this.#unauthorized();
    }
    res = await this.#fetch(url, { method, headers, body: init.body }, follow);
    if (res.status === 401) {
      await res.body?.cancel();
      throw this.#unauthorized();
    }
    return res;
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

  async #readCapped(res: Response, limit: number, what: string): Promise<Uint8Array> {
    const len = Number(res.headers.get("content-length") ?? "NaN");
    if (len > limit) {
      await res.body?.cancel();
      throw new ImageError("too_large", `${what}: ${len} bytes, more than the limit of ${limit}`);
    }
    const chunks: Uint8Array[] = [];
    let n = 0;
    for await (const chunk of res.body ?? new ReadableStream<Uint8Array>()) {
      n += chunk.length;
      if (n > limit) {
        throw new ImageError("too_large", `${what}: more than the limit of ${limit} bytes`);
      }
      chunks.push(chunk);
    }
    return concat(chunks, n);
  }

  /** The 401 answer: the given credentials were refused, or there were none. */
  #unauthorized(): ImageError {
    return new ImageError(
      "unauthorized",
      this.#opts.credential
        ? `registry ${this.registry} refused the credentials of user ${this.#opts.credential.username} (401)`
        : `registry ${this.registry} requires credentials and none were given (401)`,
      { field: "auth" },
    );
  }

  /** GET a manifest by tag or digest; the digest is computed from the bytes and checked. */
  async getManifest(repo: string, ref: string, accept: string[] = MANIFEST_TYPES): Promise<FetchedManifest> {
    const what = `manifest ${this.registry}/${repo}${ref.startsWith("sha256:") ? "@" : ":"}${ref}`;
    const res = await this.request("GET", `/v2/${repo}/manifests/${ref}`, `repository:${repo}:pull`, {
      headers: { accept: accept.join(", ") },
    });
    if (!res.ok) await this.#fail(res, what);
    const bytes = await this.#readCapped(res, this.#opts.maxManifestBytes, what);
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

/** The chunks, `total` bytes in all, as one array. */
function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
