/**
 * Standalone mode of the node runtime (`--configs DIR`): the runtime starts the controller's standalone
 * mode (`controller/main.ts --standalone DIR`) as its child process, which converges this node to the
 * BpfProgramConfig files in DIR through the runtime's unix socket, like any local root caller, and writes
 * each BpfProgram as JSON under `<state dir>/bpfprograms`. The controller's code (its reconciler, YAML,
 * the Kubernetes client) never runs inside the root runtime process, and the runtime imports nothing
 * above its layer. The child gets SIGTERM when the runtime stops and SIGKILL if it dies.
 *
 * @module
 */
import type { Logger } from "../lib/log.ts";
import type { RuntimeConfig } from "./config.ts";

const root = new URL("..", import.meta.url).pathname;

/** The command line of the standalone controller for `config` (exported for tests). */
export function standaloneCommand(config: RuntimeConfig, nodeName = Deno.hostname()): string[] {
  if (!config.socket) {
    throw new Error("--configs needs the unix socket (--socket PATH): the controller calls it");
  }
  return [
    Deno.execPath(),
    "run",
    "-A",
    "--config",
    `${root}deno.json`,
    `${root}controller/main.ts`,
    "--standalone",
    config.configs,
    "--runtime",
    `unix:${config.socket}`,
    "--node-name",
    nodeName,
    "--status-dir",
    `${config.stateDir.replace(/\/+$/, "")}/bpfprograms`,
    "--log-level",
    config.logLevel,
  ];
}

/** Starts the standalone controller for `config.configs`; `stop()` ends it and waits for it. */
export function startStandalone(config: RuntimeConfig, log: Logger): { stop(): Promise<void> } {
  const [cmd, ...args] = standaloneCommand(config);
  // setpriv --pdeathsig: the kernel ends the child if the runtime dies without stopping it.
  const child = new Deno.Command("setpriv", {
    args: ["--pdeathsig", "KILL", "--", cmd, ...args],
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  log.info("standalone controller started", { dir: config.configs, pid: child.pid });
  let exited = false;
  child.status.then((s) => {
    exited = true;
    if (!stopping) log.error("standalone controller exited", { code: s.code, signal: s.signal });
  });
  let stopping = false;
  return {
    async stop() {
      stopping = true;
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch { /* exited meanwhile */ }
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* exited meanwhile */ }
      }, 10_000);
      await child.status;
      clearTimeout(timer);
    },
  };
}
