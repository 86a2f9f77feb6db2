/**
 * HTTP to one registry: answers auth challenges (a bearer token from a realm image/egress.ts allows, or
 * basic credentials), follows redirects only as image/egress.ts allows (credentials never leave the
 * registry's origin), and gives one message for every connection failure.
 *
 * @example
 * ```ts
 * const res = await new RegistryTransport("quay.io", opts).request("GET", "/v2/", "");
 * ```
 * @module
 */
import type { Credential } from "./credentials.ts";
import { checkRealm, checkRedirect, type EgressRules, MAX_REDIRECTS } from "./egress.ts";
import { ImageError } from "./errors.ts";
import { registryHost } from "./reference.ts";

/** How to reach a registry. */
export interface TransportOptions {
  /** Plain HTTP instead of HTTPS. */
  insecure: boolean;
  /** Deno HTTP client carrying extra CA certificates, if any. */
  httpClient?: Deno.HttpClient;
  credential?: Credential;
  timeoutMs: number;
  /** Extra hosts allowed as bearer realms (image/egress.ts). */
  realmHosts?: string[];
  /** Hosts blob downloads may be redirected to; empty: any public HTTPS host (image/egress.ts). */
  redirectHosts?: string[];
}

/** Largest token server answer read, in bytes. */
const TOKEN_BYTES = 1024 * 1024;

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

/** Requests to one registry, with its credentials, tokens and egress rules. */
export class RegistryTransport {
  readonly registry: string;
  /** scheme://host[:port] of the registry's API. */
  readonly base: string;
  #opts: TransportOptions;
  #rules: EgressRules;
  #tokens = new Map<string, string>();
  #basic = false;

  constructor(registry: string, opts: TransportOptions) {
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
      body = JSON.parse(new TextDecoder().decode(await readCapped(res, TOKEN_BYTES, "token answer")));
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
}

/** Reads a body up to `limit` bytes; too_large past it (by Content-Length or as it streams). */
export async function readCapped(res: Response, limit: number, what: string): Promise<Uint8Array> {
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

/** The chunks (`total` bytes in all) as one array. */
export function concat(chunks: Uint8Array[], total = chunks.reduce((n, c) => n + c.length, 0)): Uint8Array {
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
