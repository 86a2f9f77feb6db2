/**
 * The `bpfd` command line, parsed: options and positionals become the function call they ask for
 * (`{ fn, input }`), with no request made. A usage mistake throws {@link UsageError}.
 *
 * @example
 * ```ts
 * const { command, rest, values } = parseCommandLine(["attach", "42", "xdp", "--iface", "eth0"]);
 * requestFor(command!, rest, values);
 * // { fn: "attach", input: { programId: 42, attach: { type: "xdp", iface: "eth0" } } }
 * ```
 * @module
 */
import { parseArgs } from "node:util";

/** The usage text printed with `--help` and after a usage mistake. */
export const USAGE = `usage: bpfd [--socket PATH | --url URL] [-o table|json] <command> ...

commands:
  load   --path FILE | --image URL [--pull-policy Always|IfNotPresent|Never]
         --program NAME:TYPE[:FN] ... [--global NAME=HEX ...] [--metadata KEY=VALUE ...]
         [--map-owner-id ID]
  attach PROGRAM_ID TYPE [--iface IF] [--netns NS] [--direction ingress|egress] [--priority N]
         [--proceed-on ACTION,...] [--mode native|skb|hw] [--tracepoint GROUP/NAME]
         [--fn-name FN] [--offset N] [--target PATH] [--pid PID]
  modify LINK_ID [--priority N] [--proceed-on ACTION,...]   (in place, no reload)
  detach LINK_ID
  unload PROGRAM_ID
  list   [--all] [--type TYPE] [--metadata KEY=VALUE ...]   (programs, then each hook's chain)
  get    PROGRAM_ID
  list   --cluster [--node NODE] [--type TYPE] [--namespace NS]   (every node, from the inventories)
  get    --node NODE PROGRAM_ID   (--kubeconfig FILE, --token TOKEN, --ca FILE, --server URL)
  image  build|push|pull ...   (bpfd image --help)
  policy check --as USER -f FILE ...   what BpfPolicy would refuse (bpfd policy --help)

types: xdp tc tcx tracepoint kprobe kretprobe uprobe uretprobe fentry fexit`;

const OPTIONS = {
  socket: { type: "string", default: "/run/bpfd/bpfd.sock" },
  url: { type: "string" },
  output: { type: "string", short: "o", default: "table" },
  help: { type: "boolean", short: "h" },
  path: { type: "string" },
  image: { type: "string" },
  "pull-policy": { type: "string" },
  program: { type: "string", multiple: true },
  global: { type: "string", multiple: true },
  metadata: { type: "string", multiple: true },
  "map-owner-id": { type: "string" },
  iface: { type: "string" },
  netns: { type: "string" },
  direction: { type: "string" },
  priority: { type: "string" },
  "proceed-on": { type: "string" },
  mode: { type: "string" },
  tracepoint: { type: "string" },
  "fn-name": { type: "string" },
  offset: { type: "string" },
  target: { type: "string" },
  pid: { type: "string" },
  all: { type: "boolean" },
  type: { type: "string" },
} as const;

/** The parsed options. */
export type Values = ReturnType<
  typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>
>["values"];
// deno-lint-ignore no-explicit-any
type Json = any;

/** A usage mistake: printed with the usage, exit status 2. */
export class UsageError extends Error {}

function keyValues(list: string[] | undefined, what: string): Record<string, string> {
  return Object.fromEntries((list ?? []).map((kv) => {
    const at = kv.indexOf("=");
    if (at <= 0) throw new UsageError(`${what} takes KEY=VALUE, got "${kv}"`);
    return [kv.slice(0, at), kv.slice(at + 1)];
  }));
}

function hexToBase64(hex: string, name: string): string {
  const clean = hex.replace(/^0x/, "");
  if (!/^([0-9a-fA-F]{2})+$/.test(clean)) {
    throw new UsageError(`--global ${name}: the value must be hex bytes, e.g. 01000000`);
  }
  return btoa(String.fromCharCode(...clean.match(/../g)!.map((b) => parseInt(b, 16))));
}

function int(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`${what} must be a number, got "${value}"`);
  return Number(value);
}

/** Splits a command line into options, the command and its arguments; bad options are a UsageError. */
export function parseCommandLine(args: string[]): { values: Values; command?: string; rest: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const [command, ...rest] = parsed.positionals;
  return { values: parsed.values, command, rest };
}

/** The function call a command line asks for. */
export function requestFor(command: string, args: string[], v: Values): { fn: string; input: Json } {
  const positional = (i: number, what: string) => {
    const value = args[i];
    if (value === undefined) throw new UsageError(`${command} needs ${what}`);
    return value;
  };
  switch (command) {
    case "load": {
      const bytecode = v.path
        ? { path: v.path.startsWith("/") ? v.path : `${Deno.cwd()}/${v.path}` }
        : v.image
        ? { image: { url: v.image, ...(v["pull-policy"] ? { pullPolicy: v["pull-policy"] } : {}) } }
        : undefined;
      if (!bytecode) throw new UsageError("load needs --path FILE or --image URL");
      const programs = (v.program ?? []).map((p) => {
        const [name, type, fnName] = p.split(":");
        if (!name || !type) throw new UsageError(`--program takes NAME:TYPE[:FN], got "${p}"`);
        return { name, type, ...(fnName ? { fnName } : {}) };
      });
      const globals = keyValues(v.global, "--global");
      return {
        fn: "load",
        input: {
          bytecode,
          ...(programs.length ? { programs } : {}),
          globalData: Object.fromEntries(Object.entries(globals).map(([k, hex]) => [k, hexToBase64(hex, k)])),
          metadata: keyValues(v.metadata, "--metadata"),
          ...(v["map-owner-id"] ? { mapOwnerId: int(v["map-owner-id"], "--map-owner-id") } : {}),
        },
      };
    }
    case "attach": {
      const programId = int(positional(0, "PROGRAM_ID"), "PROGRAM_ID");
      const type = positional(1, "TYPE");
      const attach = Object.fromEntries(
        Object.entries({
          type,
          iface: v.iface,
          netns: v.netns,
          direction: v.direction,
          priority: int(v.priority, "--priority"),
          proceedOn: v["proceed-on"]?.split(","),
          mode: v.mode,
          tracepoint: v.tracepoint,
          fnName: v["fn-name"],
          offset: int(v.offset, "--offset"),
          target: v.target,
          pid: int(v.pid, "--pid"),
        }).filter(([, value]) => value !== undefined),
      );
      return { fn: "attach", input: { programId, attach } };
    }
    case "modify":
      return {
        fn: "modify",
        input: {
          linkId: int(positional(0, "LINK_ID"), "LINK_ID"),
          ...(v.priority ? { priority: int(v.priority, "--priority") } : {}),
          ...(v["proceed-on"] ? { proceedOn: v["proceed-on"].split(",") } : {}),
        },
      };
    case "detach":
      return { fn: "detach", input: { linkId: int(positional(0, "LINK_ID"), "LINK_ID") } };
    case "unload":
      return { fn: "unload", input: { programId: int(positional(0, "PROGRAM_ID"), "PROGRAM_ID") } };
    case "get":
      return { fn: "get", input: { programId: int(positional(0, "PROGRAM_ID"), "PROGRAM_ID") } };
    case "list":
      return {
        fn: "list",
        input: {
          ...(v.all ? { all: true } : {}),
          ...(v.type ? { type: v.type } : {}),
          ...(v.metadata ? { metadata: keyValues(v.metadata, "--metadata") } : {}),
        },
      };
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}
