/**
 * Who may read the controller's inventory page and metrics: the bearer token (Authorization header, or
 * the `bpfd_token` cookie the page's login sets) is checked with a TokenReview, then the user with a
 * SubjectAccessReview — `list` on `bpfnodeinventories.bpfd.io` for the page, `get` on the non-resource
 * URL `/metrics` for metrics. Verdicts are cached for 10 s by the token's hash (never the token).
 *
 * @example
 * ```ts
 * const auth = new WebAuth(kc);
 * const verdict = await auth.check(token, "page"); // { ok: true, user } | { ok: false, status: 401 | 403 }
 * ```
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { INVENTORY } from "../model/inventory.ts";

/** What is being read. */
export type WebAction = "page" | "metrics";

/** A decision on one token. */
export type WebVerdict = { ok: true; user: string } | { ok: false; status: 401 | 403; reason: string };

async function hash(s: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** TokenReview + SubjectAccessReview with the controller's credentials, cached briefly. */
export class WebAuth {
  #authn: k8s.AuthenticationV1Api;
  #authz: k8s.AuthorizationV1Api;
  #cache = new Map<string, { verdict: WebVerdict; until: number }>();

  constructor(kc: k8s.KubeConfig, readonly cacheMs = 10_000) {
    this.#authn = kc.makeApiClient(k8s.AuthenticationV1Api);
    this.#authz = kc.makeApiClient(k8s.AuthorizationV1Api);
  }

  /** The verdict on `token` for `action`. */
  async check(token: string | undefined, action: WebAction): Promise<WebVerdict> {
    if (!token) return { ok: false, status: 401, reason: "no bearer token" };
    const key = `${action}:${await hash(token)}`;
    const hit = this.#cache.get(key);
    if (hit && hit.until > Date.now()) return hit.verdict;
    const verdict = await this.#review(token, action);
    if (this.#cache.size > 1000) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(key, { verdict, until: Date.now() + this.cacheMs });
    return verdict;
  }

  async #review(token: string, action: WebAction): Promise<WebVerdict> {
    const tr = await this.#authn.createTokenReview({ body: { spec: { token } } });
    const user = tr.status?.user;
    if (!tr.status?.authenticated || !user?.username) {
      return { ok: false, status: 401, reason: tr.status?.error ?? "the token is not valid" };
    }
    const sar = await this.#authz.createSubjectAccessReview({
      body: {
        spec: {
          user: user.username,
          uid: user.uid,
          groups: user.groups,
          extra: user.extra,
          ...(action === "page"
            ? { resourceAttributes: { verb: "list", group: INVENTORY.group, resource: INVENTORY.plural } }
            : { nonResourceAttributes: { verb: "get", path: "/metrics" } }),
        },
      },
    });
    if (!sar.status?.allowed) {
      const what = action === "page" ? `list ${INVENTORY.plural}.${INVENTORY.group}` : "get /metrics";
      return { ok: false, status: 403, reason: `${user.username} may not ${what}` };
    }
    return { ok: true, user: user.username };
  }
}
