/**
 * The node API's guard for the TCP listener: a hono middleware that checks the bearer token of every
 * request but the probes (`/healthz` and `/readyz` stay open for the kubelet), answers 401/403 with bpfd's error body
 * and logs the refusal, and remembers the caller's identity for `identify`.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { BpfdError } from "../../functions/mod.ts";
import type { Identity } from "../../model/schemas.ts";
import type { RuntimeConfig } from "../config.ts";
import type { Logger } from "../../lib/log.ts";
import {
  type Authenticator,
  bearerToken,
  KubernetesAuthenticator,
  TokenFileAuthenticator,
  verbFor,
} from "./auth.ts";
import { kubeReviewApi } from "./kube.ts";
import { nodeNameOf } from "./serving_cert.ts";

const identities = new WeakMap<Request, Identity>();

/** The authenticator the configuration asks for (undefined: no authentication). */
export async function authenticatorFrom(config: RuntimeConfig): Promise<Authenticator | undefined> {
  const auth = config.auth;
  if (!auth || auth.mode === "none") return undefined;
  if (auth.mode === "tokenFile") return await TokenFileAuthenticator.load(auth.tokenFile!);
  const nodeName = nodeNameOf(config);
  return new KubernetesAuthenticator(await kubeReviewApi(auth.kubeconfig), {
    nodeName,
    cacheSeconds: auth.cacheSeconds,
  });
}

/** Checks every /v1/ request with `auth`; refusals answer 401/403 and never reach a function. */
export function authMiddleware(auth: Authenticator, log: () => Logger, via: string): MiddlewareHandler {
  return async (c, next) => {
    // Deny by default: only the probes are open.
    const path = new URL(c.req.url).pathname;
    if (path === "/healthz" || path === "/readyz") return await next();
    const fn = path.match(/^\/v1\/functions\/([^/]+)$/)?.[1];
    const verb = verbFor(c.req.method, fn);
    const token = bearerToken(c.req.header("authorization"));
    const verdict = await auth.check(token, verb);
    if (!verdict.ok) {
      log().warn("call refused", {
        function: fn,
        verb,
        status: verdict.status,
        user: verdict.user,
        reason: verdict.reason,
        remote: remoteOf(c),
      });
      const code = verdict.status === 401 ? "unauthenticated" : "forbidden";
      if (verdict.status === 401) c.header("WWW-Authenticate", 'Bearer realm="bpfd"');
      return c.json(new BpfdError(verdict.status, code, verdict.reason).toBody(), verdict.status);
    }
    // A read (nothing is recorded) says whether the reader may load too: only then does it see global
    // data values (it could set them anyway). Functions that load need that verb already.
    const mayLoad = verb === "get" && fn !== undefined && (await auth.check(token, "create")).ok;
    identities.set(c.req.raw, {
      user: verdict.identity.user,
      via: `${via} ${verdict.identity.via}`,
      groups: verdict.groups,
      ...(mayLoad ? { mayLoad } : {}),
    });
    await next();
  };
}

/** The identity authMiddleware established for this request. */
export function identityOf(c: Context): Identity | undefined {
  return identities.get(c.req.raw);
}

function remoteOf(c: Context): string | undefined {
  // deno-lint-ignore no-explicit-any
  const info = (c.env as any)?.remoteAddr as Deno.NetAddr | undefined;
  return info?.hostname;
}
