/**
 * The node runtime: `deno task start`. Serves bpfd's functions on a unix socket (root and group
 * bpfd-admin, callers known by their kernel credentials) and, when configured, on a TCP address with TLS
 * and authentication, until SIGINT/SIGTERM. Programs stay loaded and attached when it stops.
 *
 * @module
 */
import { Logger } from "../lib/log.ts";
import { createNode, lazyImageStore, type Node } from "./ctx.ts";
import { type Served, serveSocket, serveTcp } from "./listeners.ts";
import { configFrom, NODE_OPTIONS_HELP, parseNodeArgs } from "./options.ts";

const USAGE = `usage: deno task start [options]

Runs bpfd's node runtime.

${NODE_OPTIONS_HELP}`;

/** Serves `node` on its socket and TCP address; resolves when both listeners are closed. */
export async function serve(node: Node, signal: AbortSignal): Promise<void> {
  const { socket, listen } = node.config;
  const listeners: Served[] = [];
  // Root alone lists the state directory; the groups traverse it to the socket and the map pins.
  const state = node.config.stateDir.replace(/\/+$/, "");
  const inState = (p: string) => p.startsWith(`${state}/`);
  await Deno.chmod(state, inState(node.config.bpffs) || (socket && inState(socket)) ? 0o711 : 0o700);
  try {
    // TCP first: once the socket answers, every listener does.
    if (listen) listeners.push(await serveTcp(node, listen));
    if (socket) listeners.push(await serveSocket(node, socket));
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

if (import.meta.main) {
  const { values } = parseNodeArgs(Deno.args);
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const config = await configFrom(values);
  const node = await createNode(config, lazyImageStore(config.images)).catch((err) => {
    // One line naming the cause, then exit: in a pod, the termination message (FallbackToLogsOnError).
    new Logger(config.logLevel).error("cannot start", { error: (err as Error).message });
    Deno.exit(1);
  });
  // Policy, standalone mode, the serving certificate, the inventory and CSI are imported only when
  // configured (runtime memory).
  const policy = config.policy
    ? await (await import("./policy.ts")).policyGateFrom(config, node.log)
    : undefined;
  node.policy = policy;
  const stop = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => stop.abort());
  }
  const standalone = config.configs
    ? (await import("./standalone.ts")).startStandalone(config, node.log.with({ component: "standalone" }))
    : undefined;
  if (config.tls?.request) {
    await (await import("./auth/serving_cert.ts")).ensureServingCertificate(config, node.log);
  }
  const inventory = config.inventory
    ? await (await import("./inventory_kube.ts")).startInventory(
      node,
      (await import("./auth/serving_cert.ts")).nodeNameOf(config),
    )
    : undefined;
  const csi = config.csi ? await (await import("./csi.ts")).startCsi(node, config.csi) : undefined;
  await serve(node, stop.signal);
  await csi?.stop();
  await inventory?.stop();
  await standalone?.stop();
  await policy?.stop();
  node.close();
  node.log.info("stopped; programs stay loaded", { programs: node.state.programs().length });
}
