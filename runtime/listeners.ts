/**
 * The node API's listeners: the unix socket (peer credentials, root and the API group) and the TCP
 * listener (TLS and authentication, browser requests refused), each with its front-door checks
 * (runtime/front_door.ts) before the functions, and the bounds of runtime/http1.ts.
 *
 * @example
 * ```ts
 * const socket = await serveSocket(node, "/run/bpfd/bpfd.sock");
 * socket.close();
 * await socket.finished;
 * ```
 * @module
 */
import { Hono } from "hono/tiny";
import { createApp } from "./app.ts";
import { groupId, type Node } from "./ctx.ts";
import { browserGuard, hostAllowed, jsonOnly, peerGuard, peerIdentity } from "./front_door.ts";
import { DEFAULT_HTTP_LIMITS } from "./http1.ts";
import { INSECURE_TCP_OPTION } from "./options.ts";
import { listenUnix } from "./unix_listener.ts";
import { ConnListener } from "./conn_listener.ts";
import type { PeerCredentials } from "../ffi/socket.ts";

/** A listener serve() waits for. */
export interface Served {
  close(): void;
  finished: Promise<void>;
}

/** The socket's app: JSON only, root and `apiGroup` only, callers recorded by their peer credentials. */
export function socketApp(node: Node, apiGid: number | undefined): Hono {
  const inner = createApp(node, (c) => peerIdentity((c.env as { peer: PeerCredentials }).peer));
  return new Hono().use(jsonOnly(), peerGuard(apiGid, node.config.apiGroup)).route("/", inner);
}

/** The unix socket: root:apiGroup 0660, and each caller checked and recorded by its peer credentials. */
export async function serveSocket(node: Node, socket: string): Promise<Served> {
  const { apiGroup, http } = node.config;
  const apiGid = await groupId(apiGroup);
  if (apiGid === undefined) node.log.warn("no such group: only root may use the socket", { group: apiGroup });
  const app = socketApp(node, apiGid);
  return await listenUnix(socket, (req, peer) => app.fetch(req, { peer }), {
    maxConnections: http.maxConnections,
    limits: { ...DEFAULT_HTTP_LIMITS, ...http },
    log: node.log,
    beforeListen: async (path) => {
      await Deno.chmod(path, 0o660);
      await Deno.chown(path, 0, apiGid ?? 0);
    },
  });
}

/**
 * The TCP listener: TLS and authentication, unless the loudly named option says otherwise. Its
 * authentication modules are imported only by a runtime that listens on TCP.
 */
export async function serveTcp(node: Node, listen: string): Promise<Served> {
  const { tls, http, allowedHosts } = node.config;
  const { authenticatorFrom, authMiddleware, identityOf } = await import("./auth/middleware.ts");
  const at = listen.lastIndexOf(":");
  const hostname = listen.slice(0, at).replace(/^\[|\]$/g, ""), port = Number(listen.slice(at + 1));
  const auth = await authenticatorFrom(node.config);
  if (!tls || !auth) {
    if (!node.config.insecureTcpWithoutAuthIUnderstandThisIsRoot) {
      throw new Error(
        `refusing to serve ${listen} without TLS and authentication (tls and auth in --config): whoever ` +
          `reaches it would be root on this machine. Use the unix socket, or --${INSECURE_TCP_OPTION}.`,
      );
    }
    node.log.warn("INSECURE: the TCP listener has no TLS or no authentication; whoever reaches it is root", {
      listen,
    });
  }
  const via = tls ? "tls" : "tcp";
  const inner = createApp(node, (c) =>
    identityOf(c) ??
      { user: "anonymous", via: `${via} ${(c.env as { remoteAddr?: Deno.NetAddr }).remoteAddr?.hostname}` });
  const app = new Hono().use(browserGuard(hostAllowed(hostname, allowedHosts)));
  // With authentication, every /v1/ request passes the guard first (401/403 never reach a function).
  if (auth) app.use(authMiddleware(auth, () => node.log, via));
  app.use(jsonOnly()).route("/", inner);
  const certs = tls
    ? { cert: await Deno.readTextFile(tls.certFile), key: await Deno.readTextFile(tls.keyFile) }
    : undefined;
  const listener = certs ? Deno.listenTls({ hostname, port, ...certs }) : Deno.listen({ hostname, port });
  return new ConnListener(
    listener,
    (conn) => ({ peer: conn.remoteAddr as Deno.NetAddr }),
    (req, remoteAddr) => app.fetch(req, { remoteAddr }),
    { maxConnections: http.maxConnections, limits: { ...DEFAULT_HTTP_LIMITS, ...http }, log: node.log },
  );
}
