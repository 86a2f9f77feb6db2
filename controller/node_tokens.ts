/**
 * The controller's credentials for node runtimes: one token per node, from the TokenRequest API for the
 * controller's own ServiceAccount and bound to that node's audience (`bpfd.io/node/<node>`), so a node
 * that leaks a token it was sent cannot use it on any other node (nor on the API server). A token is
 * reused until 80 % of its lifetime has passed, then requested again (as the kubelet rotates projected
 * tokens).
 *
 * @example
 * ```ts
 * const tokens = new NodeTokens(kc, { namespace: "bpfd", serviceAccount: "bpfd-controller" });
 * const token = await tokens.token("node-a");
 * ```
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { nodeAudience } from "../model/names.ts";

/** Options of {@link NodeTokens}. */
export interface NodeTokensOptions {
  /** The ServiceAccount the tokens are for (the controller's own). */
  namespace: string;
  serviceAccount: string;
  /** Lifetime asked for (default 3600 s; the API server's minimum is 600 s). */
  expirationSeconds?: number;
}

/** Per-node, audience-bound tokens of one ServiceAccount, requested on demand and renewed. */
export class NodeTokens {
  #api: k8s.CoreV1Api;
  #tokens = new Map<string, Promise<{ token: string; renewAt: number }>>();

  constructor(kc: k8s.KubeConfig, readonly opts: NodeTokensOptions) {
    this.#api = kc.makeApiClient(k8s.CoreV1Api);
  }

  /** A token for `nodeName`'s audience, valid for at least 20 % of its lifetime. */
  async token(nodeName: string): Promise<string> {
    const cached = this.#tokens.get(nodeName);
    if (cached) {
      const got = await cached.catch(() => undefined);
      if (got && Date.now() < got.renewAt) return got.token;
      if (this.#tokens.get(nodeName) !== cached) return await this.token(nodeName);
    }
    const asked = this.#request(nodeName);
    this.#tokens.set(nodeName, asked);
    asked.catch(() => this.#tokens.get(nodeName) === asked && this.#tokens.delete(nodeName));
    return (await asked).token;
  }

  /** Forgets the token of a node that is gone. */
  forget(nodeName: string): void {
    this.#tokens.delete(nodeName);
  }

  async #request(nodeName: string): Promise<{ token: string; renewAt: number }> {
    const asked = Date.now();
    const r = await this.#api.createNamespacedServiceAccountToken({
      name: this.opts.serviceAccount,
      namespace: this.opts.namespace,
      body: {
        spec: { audiences: [nodeAudience(nodeName)], expirationSeconds: this.opts.expirationSeconds ?? 3600 },
      },
    });
    const token = r.status?.token;
    if (!token) throw new Error(`TokenRequest for ${nodeAudience(nodeName)} answered no token`);
    const expires = r.status?.expirationTimestamp ? new Date(r.status.expirationTimestamp).getTime() : asked;
    return { token, renewAt: asked + 0.8 * (expires - asked) };
  }
}

/** The ServiceAccount a JWT of the TokenRequest API or a ServiceAccount Secret names in `sub`. */
export function serviceAccountOf(jwt: string): { namespace: string; name: string } | undefined {
  try {
    const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const sub = JSON.parse(atob(payload)).sub as string | undefined;
    const m = sub?.match(/^system:serviceaccount:([^:]+):([^:]+)$/);
    return m ? { namespace: m[1], name: m[2] } : undefined;
  } catch {
    return undefined; /* not a JWT: a static token */
  }
}
