/**
 * Who may call a node runtime over TCP. The unix socket is local (file permissions: root and group
 * `bpfd`); the TCP listener serves TLS and, as the kubelet does, lets the cluster vouch for callers:
 *
 * - **kubernetes**: the bearer token is checked with a TokenReview for this node's audience
 *   (`bpfd.io/node/<node>`: a token bound to another node or to the API server is refused), then the
 *   caller (with its `extra`) is authorized with a
 *   SubjectAccessReview on the subresource `bpfd` of this node's Node object — verb `get` for the
 *   functions that only read (`list`, `get`, `GET /v1/functions`), `trace` for trace sessions (`trace`, `trace_stop`; ClusterRole
 *   `bpfd-tracer`), `create` for every other function
 *   (`nodes/bpfd`, name = the node, like the kubelet's `nodes/proxy`). So "who may load what" is ordinary
 *   RBAC: the controller's ClusterRole grants `nodes/bpfd` get+create; nobody else has it by default.
 * - **tokenFile** (standalone, no API server): a static token file in kube-apiserver's `--token-auth-file`
 *   format (`token,user,uid,"group1,group2"`); every listed token may call every function.
 * - **none**: anyone who reaches the port (the embedded default listens on 127.0.0.1 only).
 *
 * Answers: 401 (no, malformed, unknown, forged or expired token), 403 (authenticated, not authorized).
 * Verdicts are cached for `cacheSeconds` (10 s): a revoked binding takes at most that long to bite. A
 * refused token is refused again for 10 s without a new TokenReview (keyed by its hash, bounded).
 *
 * @module
 */
import type { Identity } from "../../model/schemas.ts";
import { NODE_API_ATTRIBUTES, nodeAudience, TRACE_VERB } from "../../model/names.ts";

/** The functions that only read; `trace` needs verb `trace`, every other function `create`. */
export const READ_FUNCTIONS = new Set(["list", "get"]);

/** An RBAC verb on `nodes/bpfd`. */
export type NodeApiVerb = "get" | "create" | typeof TRACE_VERB;

/** The RBAC verb a call needs. */
export function verbFor(method: string, fn: string | undefined): NodeApiVerb {
  if (method === "GET" || method === "HEAD") return "get";
  if (fn === "trace" || fn === "trace_stop") return TRACE_VERB;
  return fn !== undefined && READ_FUNCTIONS.has(fn) ? "get" : "create";
}

/** The outcome of checking one request. */
export type Verdict =
  | { ok: true; identity: Identity; groups: string[] }
  | { ok: false; status: 401 | 403; reason: string; user?: string };

/** Checks a bearer token for an action (verb) on this node's API. */
export interface Authenticator {
  readonly mode: string;
  check(token: string | undefined, verb: NodeApiVerb): Promise<Verdict>;
}

/** The bearer token of an Authorization header, or undefined. */
export function bearerToken(header: string | undefined | null): string | undefined {
  const m = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return m?.[1];
}

async function sha256(s: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A small TTL cache keyed by strings (hashed tokens, never tokens themselves), at most `max` entries. */
class TtlCache<V> {
  #m = new Map<string, { v: V; until: number }>();
  constructor(readonly ttlMs: number, readonly max = 1000) {}
  get(k: string): V | undefined {
    const e = this.#m.get(k);
    if (!e) return undefined;
    if (e.until < Date.now()) {
      this.#m.delete(k);
      return undefined;
    }
    return e.v;
  }
  set(k: string, v: V): void {
    if (this.ttlMs <= 0) return;
    this.#m.delete(k);
    if (this.#m.size >= this.max) this.#m.delete(this.#m.keys().next().value!);
    this.#m.set(k, { v, until: Date.now() + this.ttlMs });
  }
}

/** A user as a TokenReview describes it. */
export interface ReviewedUser {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

/** The parts of the TokenReview / SubjectAccessReview APIs this needs (runtime/auth/kube.ts, or a fake). */
export interface ReviewApi {
  /** A TokenReview of `token` for `audiences` (spec.audiences). */
  tokenReview(token: string, audiences: string[]): Promise<
    { authenticated: boolean; user?: ReviewedUser; audiences?: string[]; error?: string }
  >;
  accessReview(attrs: {
    user: string;
    uid?: string;
    groups: string[];
    extra?: Record<string, string[]>;
    verb: string;
    resource: string;
    subresource: string;
    group: string;
    name: string;
  }): Promise<{ allowed: boolean; denied?: boolean; reason?: string; evaluationError?: string }>;
}

/** Options of a {@link KubernetesAuthenticator}. */
export interface KubernetesAuthOptions {
  /** This node's Node name: access is checked on `nodes/bpfd` of it. */
  nodeName: string;
  /** The audience a token must be bound to (default `nodeAudience(nodeName)`). */
  audience?: string;
  /** How long a verdict is reused (default 10 s). */
  cacheSeconds?: number;
  /** How long a refused token is refused without asking again (default 10 s). */
  negativeCacheSeconds?: number;
  /** How many tokens each cache holds at most (default 10,000). */
  maxEntries?: number;
}

type User = { username: string; uid?: string; groups: string[]; extra?: Record<string, string[]> };
type Review = { user: User } | { refused: string };

/** Delegated authentication and authorization through the API server (kubelet-style webhook mode). */
export class KubernetesAuthenticator implements Authenticator {
  readonly mode = "kubernetes";
  readonly nodeName: string;
  readonly audience: string;
  #users: TtlCache<User>;
  #refused: TtlCache<string>;
  #reviewing = new Map<string, Promise<Review>>();
  #access: TtlCache<{ allowed: boolean; reason: string }>;

  constructor(readonly api: ReviewApi, opts: KubernetesAuthOptions) {
    this.nodeName = opts.nodeName;
    this.audience = opts.audience ?? nodeAudience(opts.nodeName);
    const max = opts.maxEntries ?? 10_000;
    this.#users = new TtlCache((opts.cacheSeconds ?? 10) * 1000, max);
    this.#refused = new TtlCache((opts.negativeCacheSeconds ?? 10) * 1000, max);
    this.#access = new TtlCache((opts.cacheSeconds ?? 10) * 1000, max);
  }

  async check(token: string | undefined, verb: NodeApiVerb): Promise<Verdict> {
    if (!token) return { ok: false, status: 401, reason: "no bearer token (Authorization: Bearer <token>)" };
    const review = await this.#review(await sha256(token), token);
    if ("refused" in review) return { ok: false, status: 401, reason: review.refused };
    const user = review.user;
    const akey = JSON.stringify([user.username, user.uid, user.groups, user.extra ?? {}, verb]);
    let access = this.#access.get(akey);
    if (!access) {
      try {
        const r = await this.api.accessReview({
          user: user.username,
          uid: user.uid,
          groups: user.groups,
          extra: user.extra,
          verb,
          ...NODE_API_ATTRIBUTES,
          name: this.nodeName,
        });
        access = { allowed: r.allowed && !r.denied, reason: r.reason || r.evaluationError || "" };
      } catch (e) {
        return {
          ok: false,
          status: 403,
          user: user.username,
          reason: `access could not be reviewed: ${(e as Error).message}`,
        };
      }
      this.#access.set(akey, access);
    }
    if (!access.allowed) {
      return {
        ok: false,
        status: 403,
        user: user.username,
        reason: `${user.username} may not ${verb} nodes/${NODE_API_ATTRIBUTES.subresource} on node ` +
          `${this.nodeName}${access.reason ? ` (${access.reason})` : ""}`,
      };
    }
    return { ok: true, identity: { user: user.username, via: "token" }, groups: user.groups };
  }

  /**
   * Who `token` is, for this node's audience: from the caches, or one TokenReview shared by every
   * request that asks about the same token meanwhile. A refusal is remembered for
   * `negativeCacheSeconds`, an error of the API server is not.
   */
  #review(key: string, token: string): Promise<Review> {
    const user = this.#users.get(key);
    if (user) return Promise.resolve({ user });
    const refused = this.#refused.get(key);
    if (refused) return Promise.resolve({ refused });
    let pending = this.#reviewing.get(key);
    if (!pending) {
      pending = this.#ask(key, token).finally(() => this.#reviewing.delete(key));
      this.#reviewing.set(key, pending);
    }
    return pending;
  }

  async #ask(key: string, token: string): Promise<Review> {
    let r;
    try {
      r = await this.api.tokenReview(token, [this.audience]);
    } catch (e) {
      return { refused: `the token could not be reviewed: ${(e as Error).message}` };
    }
    // A server that ignored spec.audiences would vouch for tokens bound to other audiences: refuse.
    if (!r.authenticated || !r.user?.username || !r.audiences?.includes(this.audience)) {
      const refused = `the token is not valid for ${this.audience}${r.error ? `: ${r.error}` : ""}`;
      this.#refused.set(key, refused);
      return { refused };
    }
    const user = {
      username: r.user.username,
      uid: r.user.uid,
      groups: r.user.groups ?? [],
      extra: r.user.extra,
    };
    this.#users.set(key, user);
    return { user };
  }
}

/** One line of a static token file. */
export interface StaticToken {
  token: string;
  user: string;
  uid?: string;
  groups: string[];
}

/** Parses kube-apiserver's token file format: `token,user,uid,"group1,group2"` (uid and groups optional). */
export function parseTokenFile(text: string, file = "token file"): StaticToken[] {
  const out: StaticToken[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const fields = splitCsv(line);
    const [token, user, uid, groups] = fields;
    if (!token || !user) throw new Error(`${file}:${i + 1}: needs at least token,user`);
    if (token.length < 16) throw new Error(`${file}:${i + 1}: the token is shorter than 16 characters`);
    out.push({ token, user, uid: uid || undefined, groups: groups ? groups.split(",").filter(Boolean) : [] });
  });
  if (!out.length) throw new Error(`${file}: no tokens`);
  return out;
}

/** One CSV line: fields split at commas, double quotes around a field keep its commas. */
function splitCsv(line: string): string[] {
  const fields: string[] = [];
  let cur = "", quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    else if (ch === "," && !quoted) {
      fields.push(cur.trim());
      cur = "";
    } else cur += ch;
  }
  fields.push(cur.trim());
  return fields;
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** Standalone mode: the tokens of a static file, each allowed every function. */
export class TokenFileAuthenticator implements Authenticator {
  readonly mode = "tokenFile";
  #tokens: Array<{ digest: Uint8Array; entry: StaticToken }> = [];

  private constructor() {}

  static async load(file: string): Promise<TokenFileAuthenticator> {
    const a = new TokenFileAuthenticator();
    for (const entry of parseTokenFile(await Deno.readTextFile(file), file)) {
      a.#tokens.push({ digest: await digest(entry.token), entry });
    }
    return a;
  }

  async check(token: string | undefined): Promise<Verdict> {
    if (!token) return { ok: false, status: 401, reason: "no bearer token (Authorization: Bearer <token>)" };
    const d = await digest(token);
    const hit = this.#tokens.find((t) => constantTimeEqual(t.digest, d));
    if (!hit) return { ok: false, status: 401, reason: "the token is not in the token file" };
    return { ok: true, identity: { user: hit.entry.user, via: "token" }, groups: hit.entry.groups };
  }
}

async function digest(s: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
}
