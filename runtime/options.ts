/**
 * Command-line options shared by the runtime and `invoke`: where the node's state, bpffs and socket
 * are. A small parser of its own: `node:util` would cost the runtime about 5 MiB of resident memory.
 *
 * @module
 */
import { loadConfig, type RuntimeConfig } from "./config.ts";

const VALUE_OPTIONS = ["config", "state-dir", "bpffs", "socket", "listen", "log-level", "configs"] as const;
type NodeOption = typeof VALUE_OPTIONS[number];
/** The only way to serve TCP without TLS and authentication, named so nobody types it by accident. */
export const INSECURE_TCP_OPTION = "insecure-tcp-without-auth-i-understand-this-is-root";

/** Parsed options: values by name, `help`, the insecure TCP flag, and the positional arguments. */
export interface NodeArgs {
  values: Partial<Record<NodeOption, string>> & { help?: boolean; insecureTcp?: boolean };
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
    if (arg === `--${INSECURE_TCP_OPTION}`) {
      values.insecureTcp = true;
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
    insecureTcpWithoutAuthIUnderstandThisIsRoot: values.insecureTcp,
  });
}

export const NODE_OPTIONS_HELP = `  --config FILE       JSON configuration (see runtime/config.ts)
  --state-dir DIR     state and lock (default /run/bpfd)
  --bpffs DIR         bpffs for pins, mounted if needed (default /run/bpfd/fs)
  --socket PATH       unix socket, "" for none (default /run/bpfd/bpfd.sock; root and group bpfd-admin)
  --listen HOST:PORT  TCP listener (default none); needs tls and auth in the --config file
  --${INSECURE_TCP_OPTION}
                      serve --listen without TLS or authentication: whoever reaches it is root here
  --log-level LEVEL   debug, info, warn, error (default info)
  --configs DIR       standalone mode: converge this node to the BpfProgramConfig files (YAML/JSON) in DIR`;
