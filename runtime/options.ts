/**
 * Command-line options shared by the runtime, `invoke` and the CLI: where the node's state, bpffs and
 * socket are.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadConfig, type RuntimeConfig } from "./config.ts";

export const NODE_OPTIONS = {
  config: { type: "string" },
  "state-dir": { type: "string" },
  bpffs: { type: "string" },
  socket: { type: "string" },
  listen: { type: "string" },
  "log-level": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Parses node options from `args`; positionals are returned as they are. */
export function parseNodeArgs(args: string[]) {
  return parseArgs({ args, options: NODE_OPTIONS, allowPositionals: true, strict: true });
}

/** The runtime configuration the parsed options describe. */
export function configFrom(values: Record<string, unknown>): Promise<RuntimeConfig> {
  return loadConfig(values.config as string | undefined, {
    stateDir: values["state-dir"] as string | undefined,
    bpffs: values.bpffs as string | undefined,
    socket: values.socket as string | undefined,
    listen: values.listen as string | undefined,
    logLevel: values["log-level"] as RuntimeConfig["logLevel"] | undefined,
  });
}

export const NODE_OPTIONS_HELP = `  --config FILE       JSON configuration (see runtime/config.ts)
  --state-dir DIR     state and lock (default /run/bpfd)
  --bpffs DIR         bpffs for pins, mounted if needed (default /run/bpfd/fs)
  --socket PATH       unix socket, "" for none (default /run/bpfd/bpfd.sock)
  --listen HOST:PORT  TCP listener, "" for none (default 127.0.0.1:50052)
  --log-level LEVEL   debug, info, warn, error (default info)`;
