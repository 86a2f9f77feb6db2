/**
 * The node runtime: `deno task start`. Serves bpfd's functions on a unix socket (root and group
 * bpfd-admin, callers known by their kernel credentials) and, when configured, on a TCP address with TLS
 * and authentication, until SIGINT/SIGTERM. Programs stay loaded and attached when it stops.
 *
 * @module
 */
import { Hono } from "hono";
import { createApp } from "./app.ts";
import { authenticatorFrom, authMiddleware, identityOf } from "./auth/middleware.ts";
import { createNode, groupId, lazyImageStore, type Node } from "./ctx.ts";
import { browserGuard, hostAllowed, jsonOnly, peerGuard, peerIdentity } from "./front_door.ts";
import { configFrom, INSECURE_TCP_OPTION, NODE_OPTIONS_HELP, parseNodeArgs } from "./options.ts";
import { DEFAULT_HTTP_LIMITS } from "./http1.ts";
import { TcpListener } from "./tcp_listener.ts";
import { UnixListener } from "./unix_listener.ts";
import type { PeerCredentials } from "../ffi/socket.ts";

const USAGE = `usage: deno task start [options]

Runs bpfd's node runtime.

${NODE_OPTIONS_HELP}`;

/** A listener serve() waits for. */
interface Served {
  close(): void;
  finished: Promise<void>;
}

/** Serves `node` on its socket and TCP address; resolves when both listeners are closed. */
export async function serve(node: Node, signal: AbortSignal): Promise<void> {
  const { socket, listen } = node.config;
  const listeners: Served[] = [];
  // Root alone lists the state directory; the groups traverse it to the socket and the map pins.
  const state = node.config.stateDir.replace(/\/+$/, "");
  const inState = (p: string) => p.startsWith(`${state}/`);
  await Deno.chmod(state, inState(node.config.bpffs) || (socket && inState(socket)) ? 0o711 : 0o700);
  try {
    if (socket) listeners.push(await serveSocket(node, socket));
    if (listen) listeners.push(await serveTcp(node, listen));
  } catch (err) {
    for (const l of listeners) l.close();
    throw err;
  }
  signal.addEventListener("abort", () => listeners.forEach((l) => l.close()), { once: true });
  node.log.info("serving", {
    socket: socket || undefined,
    listen: listen || undefined,
    tls: !!node.config.tls,
    auth: node.config.auth?.mode ?? "none",
    programs: node.state.programs().length,
  });
  await Promise.all(listeners.map((l) => l.finished));
}

/** The unix socket: root:apiGroup 0660, and each caller checked and recorded by its peer credentials. */
async function serveSocket(node: Node, socket: string): Promise<Served> {
  const { apiGroup, http } = node.config;
  const apiGid = await groupId(apiGroup);
  if (apiGid === undefined) node.log.warn("no such group: only root may use the socket", { group: apiGroup });
  await Deno.remove(socket).catch(() => {});
  const inner = createApp(node, (c) => peerIdentity((c.env as { peer: PeerCredentials }).peer));
  const app = new Hono().use(jsonOnly(), peerGuard(apiGid, apiGroup)).route("/", inner);
  return await UnixListener.open(socket, (req, peer) => app.fetch(req, { peer }), {
    maxConnections: http.maxConnections,
    limits: { ...DEFAULT_HTTP_LIMITS, ...http },
    log: node.log,
    beforeListen: async () => {
      await Deno.chmod(socket, 0o660);
      await Deno.chown(socket, 0, apiGid ?? 0);
    },
  });
}

/** The TCP listener: TLS and authentication, unless the loudly named option says otherwise. */
async function serveTcp(node: Node, listen: string): Promise<Served> {
  const { tls, http, allowedHosts } = node.config;
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
  return TcpListener.open({ hostname, port }, (req, remoteAddr) => app.fetch(req, { remoteAddr }), {
    maxConnections: http.maxConnections,
    limits: { ...DEFAULT_HTTP_LIMITS, ...http },
    log: node.log,
    tls: certs,
  });
}

/**
 * Standalone mode: the controller's reconciler fed by the config files in `dir`, driving this node
 * in-process; BpfProgram objects are written as JSON under the state directory. Loaded only when used.
 */
async function startStandalone(node: Node, dir: string): Promise<{ stop(): Promise<void> }> {
  const { Standalone, inProcessCaller } = await import("../controller/standalone.ts");
  const name = Deno.hostname();
  const standalone = new Standalone({
    dir,
    node: { name, labels: { "kubernetes.io/hostname": name } },
    nodes: inProcessCaller(node),
    log: node.log.with({ component: "standalone" }),
    statusDir: `${node.config.stateDir}/bpfprograms`,
  });
  await standalone.start();
  return standalone;
}

if (import.meta.main) {
  const { values } = parseNodeArgs(Deno.args);
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const config = await configFrom(values);
  const node = await createNode(config, lazyImageStore(config.images));
  const stop = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => stop.abort());
  }
  const standalone = config.configs ? await startStandalone(node, config.configs) : undefined;
  await serve(node, stop.signal);
  await standalone?.stop();
  node.close();
  node.log.info("stopped; programs stay loaded", { programs: node.state.programs().length });
}
