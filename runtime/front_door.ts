/**
 * What every request passes before a function sees it. On every listener: a POST must say
 * `Content-Type: application/json` (415), so no browser "simple request" gets through. On TCP: no
 * `Origin` (403, browsers send it on cross-site requests) and a `Host` that names this runtime (421: a
 * DNS-rebound name does not). On the unix socket: the kernel's peer credentials must be root or a member
 * of the API group (403); they become the caller's identity.
 *
 * @example
 * ```ts
 * const app = new Hono().use(browserGuard(hostAllowed("127.0.0.1", [])), jsonOnly()).route("/", api);
 * ```
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { Identity } from "../model/schemas.ts";
import type { PeerCredentials } from "../ffi/socket.ts";

function refusal(status: 403 | 415 | 421, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}

const isProbe = (path: string) => path === "/healthz" || path === "/readyz";

/** 415 for a POST whose body is not declared as JSON. */
export function jsonOnly(): MiddlewareHandler {
  return async (c, next) => {
    const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (c.req.method === "POST" && type !== "application/json") {
      return refusal(
        415,
        "unsupported_media_type",
        "POST bodies must be sent as Content-Type: application/json",
      );
    }
    await next();
  };
}

/**
 * The Host names a TCP listener answers to: the address it listens on, localhost names, this machine's
 * hostname, `extra`; any IP literal when it listens on all addresses (DNS rebinding needs a name).
 */
export function hostAllowed(listenHost: string, extra: readonly string[]): (host: string) => boolean {
  const names = new Set(["localhost", "127.0.0.1", "::1", Deno.hostname().toLowerCase(), ...extra]);
  const bare = (h: string) => h.replace(/^\[|\]$/g, "").toLowerCase();
  names.add(bare(listenHost));
  const wildcard = ["0.0.0.0", "::", ""].includes(bare(listenHost));
  return (header) => {
    const m = header.match(/^(\[[0-9a-fA-F:.]+\]|[^:\[\]]+)(?::\d{1,5})?$/);
    if (!m) return false;
    const host = bare(m[1]);
    if (names.has(host)) return true;
    const ipLiteral = /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || m[1].startsWith("[");
    return wildcard && ipLiteral;
  };
}

/** 403 for a request with `Origin`, 421 for a `Host` this listener does not answer to (probes too). */
export function browserGuard(allowed: (host: string) => boolean): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.header("origin") !== undefined) {
      return refusal(403, "forbidden", "requests from web pages (with an Origin header) are refused");
    }
    if (!allowed(c.req.header("host") ?? "")) {
      return refusal(421, "misdirected_request", "the Host header does not name this runtime");
    }
    await next();
  };
}

/** Whether unix socket peer `peer` may call the API: root, or a member of the API group `apiGid`. */
export function peerAllowed(peer: PeerCredentials, apiGid: number | undefined): boolean {
  if (peer.uid === 0) return true;
  if (apiGid === undefined) return false;
  return peer.gid === apiGid || peer.groups.includes(apiGid);
}

/** The recorded identity of a unix socket peer. */
export function peerIdentity(peer: PeerCredentials): Identity {
  const { uid, gid, pid, groups } = peer;
  return {
    user: `uid:${uid}`,
    uid,
    gid,
    pid,
    ...(groups.length ? { gids: groups } : {}),
    via: "unix-socket",
  };
}

/** 403 on the socket for a peer that is neither root nor in the API group (probes stay open). */
export function peerGuard(apiGid: number | undefined, apiGroup: string): MiddlewareHandler {
  return async (c, next) => {
    const peer = (c.env as { peer?: PeerCredentials } | undefined)?.peer;
    if (!isProbe(c.req.path) && (!peer || !peerAllowed(peer, apiGid))) {
      return refusal(
        403,
        "forbidden",
        `uid ${peer?.uid} is neither root nor in group ${apiGroup}, the group that may use this socket`,
      );
    }
    await next();
  };
}
