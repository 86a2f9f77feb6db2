/**
 * The node runtime: `deno task start`. Serves bpfd's functions on a unix socket (root and group bpfd)
 * and on a TCP address, until SIGINT/SIGTERM. Programs stay loaded and attached when it stops.
 *
 * @module
 */
import { Hono } from "hono";
import { createApp } from "./app.ts";
import { authenticatorFrom, authMiddleware, identityOf } from "./auth/middleware.ts";
import { createNode, lazyImageStore, type Node } from "./ctx.ts";
import { configFrom, NODE_OPTIONS_HELP, parseNodeArgs } from "./options.ts";
import { startStandalone } from "./standalone.ts";
import { policyGateFrom } from "./policy.ts";
import { ensureServingCertificate } from "./auth/serving_cert.ts";

const USAGE = `usage: deno task start [options]

Runs bpfd's node runtime.

${NODE_OPTIONS_HELP}`;

/** Serves `node` on its socket and TCP address; resolves when both listeners are closed. */
export async function serve(node: Node, signal: AbortSignal): Promise<void> {
  const { socket, listen } = node.config;
  const servers: Deno.HttpServer[] = [];
  // Group bpfd reaches the socket and the map pins through the state directory when they are inside it.
  const gid = node.kernel.groupId;
  const state = node.config.stateDir.replace(/\/+$/, "");
  const inState = (p: string) => p.startsWith(`${state}/`);
  if (gid !== undefined && (inState(node.config.bpffs) || (socket && inState(socket)))) {
    await Deno.chown(state, 0, gid);
    await Deno.chmod(state, 0o750);
  }
  if (socket) {
    await Deno.remove(socket).catch(() => {});
    const app = createApp(node, () => ({ user: "local", via: "unix-socket" }));
    servers.push(Deno.serve({ path: socket, signal, onListen: () => {} }, app.fetch));
    await Deno.chmod(socket, 0o660);
    if (gid !== undefined) await Deno.chown(socket, 0, gid);
  }
  if (listen) {
    const at = listen.lastIndexOf(":");
    const hostname = listen.slice(0, at), port = Number(listen.slice(at + 1));
    const { tls } = node.config;
    const via = tls ? "tls" : "tcp";
    const auth = await authenticatorFrom(node.config);
    if (!auth && !/^(127\.|\[?::1\]?$|localhost$)/.test(hostname)) {
      node.log.warn("the TCP listener is not loopback and has no authentication (auth.mode none)", {
        listen,
      });
    }
    const inner = createApp(
      node,
      (c) => identityOf(c) ?? { user: "anonymous", via: `${via} ${c.req.header("host") ?? hostname}` },
    );
    // With authentication, every /v1/ request passes the guard first (401/403 never reach a function).
    const app = auth ? new Hono().use(authMiddleware(auth, () => node.log, via)).route("/", inner) : inner;
    const certs = tls
      ? { cert: await Deno.readTextFile(tls.certFile), key: await Deno.readTextFile(tls.keyFile) }
      : {};
    servers.push(Deno.serve({ hostname, port, signal, onListen: () => {}, ...certs }, app.fetch));
  }
  node.log.info("serving", {
    socket: socket || undefined,
    listen: listen || undefined,
    tls: !!node.config.tls,
    auth: node.config.auth?.mode ?? "none",
    programs: node.state.programs().length,
  });
  await Promise.all(servers.map((s) => s.finished));
}

if (import.meta.main) {
  const { values } = parseNodeArgs(Deno.args);
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const config = await configFrom(values);
  const node = await createNode(config, lazyImageStore(config.images));
  const policy = await policyGateFrom(config, node.log);
  node.policy = policy;
  const stop = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => stop.abort());
  }
  const standalone = config.configs
    ? startStandalone(config, node.log.with({ component: "standalone" }))
    : undefined;
  await ensureServingCertificate(config, node.log);
  await serve(node, stop.signal);
  await standalone?.stop();
  await policy?.stop();
  node.close();
  node.log.info("stopped; programs stay loaded", { programs: node.state.programs().length });
}
