/**
 * Command-line options shared by the runtime and `invoke`: where the node's state, bpffs and socket
 * are. A small parser of its own: `node:util` would cost the runtime about 5 MiB of resident memory.
 *
 * @module
 */
import { loadConfig, type RuntimeConfig } from "./config.ts";

const VALUE_OPTIONS = ["config", "state-dir", "bpffs", "socket", "listen", "log-level", "configs"] as const;
type NodeOption = typeof VALUE_OPTIONS[number];

/** Parsed options: values by name, `help`, and the positional arguments. */
export interface NodeArgs {
  values: Partial<Record<NodeOption, string>> & { help?: boolean };
  positionals: string[];
}

/** Parses `--name value`, `--name=value` and `-h/--help`; anything else starting with `-` is an error. */
export function parseNodeArgs(args: string[]): NodeArgs {
  const values: NodeArgs["values"] = {};
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "-h" || arg === "--help") {
      values.help = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2);
    if (!(VALUE_OPTIONS as readonly string[]).includes(name)) throw new Error(`unknown option ${arg}`);
    const value = inline ?? args[++i];
    if (value === undefined) throw new Error(`option --${name} needs a value`);
    values[name as NodeOption] = value;
  }
  return { values, positionals };
}

/** The runtime configuration the parsed options describe. */
export function configFrom(values: NodeArgs["values"]): Promise<RuntimeConfig> {
  return loadConfig(values.config, {
    stateDir: values["state-dir"],
    bpffs: values.bpffs,
    socket: values.socket,
    listen: values.listen,
    logLevel: values["log-level"] as RuntimeConfig["logLevel"] | undefined,
    configs: values.configs,
  });
}

export const NODE_OPTIONS_HELP = `  --config FILE       JSON configuration (see runtime/config.ts)
  --state-dir DIR     state and lock (default /run/bpfd)
  --bpffs DIR         bpffs for pins, mounted if needed (default /run/bpfd/fs)
  --socket PATH       unix socket, "" for none (default /run/bpfd/bpfd.sock)
  --listen HOST:PORT  TCP listener, "" for none (default 127.0.0.1:50052)
  --log-level LEVEL   debug, info, warn, error (default info)
  --configs DIR       standalone mode: converge this node to the BpfProgramConfig files (YAML/JSON) in DIR`;
