/**
 * `bpfd trace`: runs a bpftrace program on a node runtime and prints its output as it comes — on the
 * local runtime (unix socket or `--url`), on one Node (`--node`), on every Node a label selector picks
 * (`--nodes`, each line prefixed with its node), or on the node of a pod (`--pod`, whose uprobe paths
 * are then read inside the pod's container). Cluster nodes are found and called with the kubeconfig.
 *
 * @example
 * ```sh
 * bpfd trace --node worker-1 -e 'tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }' --duration 30s
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import type { TraceEvent } from "../model/trace.ts";
import { clusterTargets, type Target } from "./trace_targets.ts";

/** The usage of `bpfd trace`. */
export const TRACE_USAGE = `usage: bpfd trace (-e PROGRAM | --file FILE) [--duration 60s] [-o text|json]
                  [--socket PATH | --url URL | --node NODE | --nodes SELECTOR | --pod NS/NAME [--container C]]
                  [--port 50052] [--node-ca FILE] [--token-file FILE | --service-account NS/NAME]

Runs a bpftrace program for a bounded time on a node runtime and streams its output; the session ends
at its duration or at the first Ctrl-C (bpftrace prints its maps either way); a second Ctrl-C leaves at once.
  --node, --nodes, --pod   find the node(s) with your kubeconfig and call their runtimes over TLS
  --node-ca FILE           the CA of the node runtimes' certificates (bpfd's node CA)
  --token-file FILE        a token for the node's audience (bpfd.io/node/<node>), or
  --service-account NS/N   ask the API server for one (TokenRequest) for that ServiceAccount`;

const OPTIONS = {
  e: { type: "string", short: "e" },
  file: { type: "string" },
  duration: { type: "string" },
  output: { type: "string", short: "o", default: "text" },
  socket: { type: "string", default: "/run/bpfd/bpfd.sock" },
  url: { type: "string" },
  node: { type: "string" },
  nodes: { type: "string" },
  pod: { type: "string" },
  container: { type: "string" },
  port: { type: "string", default: "50052" },
  "node-ca": { type: "string" },
  "token-file": { type: "string" },
  "service-account": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The parsed options of `bpfd trace`. */
export type TraceValues = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>["values"];

/** A duration as `30s`, `2m`, `1h` or plain seconds; undefined when it is none of those. */
export function parseDuration(text: string): number | undefined {
  const m = text.match(/^(\d+)(s|m|h)?$/);
  if (!m) return undefined;
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600 }[m[2] as "s" | "m" | "h"] ?? 1);
}

/** Runs `bpfd trace` with `args`; returns the exit status. */
export async function runTraceCli(args: string[]): Promise<number> {
  let v: TraceValues;
  try {
    v = parseArgs({ args, options: OPTIONS, strict: true }).values;
  } catch (err) {
    console.error(`bpfd trace: ${(err as Error).message}\n\n${TRACE_USAGE}`);
    return 2;
  }
  if (v.help) {
    console.log(TRACE_USAGE);
    return 0;
  }
  const script = v.e ?? (v.file ? await Deno.readTextFile(v.file) : undefined);
  const seconds = v.duration === undefined ? undefined : parseDuration(v.duration);
  const usage = !script
    ? "give the program with -e PROGRAM or --file FILE"
    : v.duration !== undefined && !seconds
    ? `--duration takes 30s, 2m, 1h or seconds, got "${v.duration}"`
    : [v.url, v.node, v.nodes, v.pod].filter(Boolean).length > 1
    ? "choose one of --url, --node, --nodes and --pod"
    : undefined;
  if (usage) {
    console.error(`bpfd trace: ${usage}\n\n${TRACE_USAGE}`);
    return 2;
  }
  let targets: Target[];
  try {
    targets = v.node || v.nodes || v.pod ? await clusterTargets(v) : [localTarget(v)];
  } catch (err) {
    console.error(`bpfd trace: ${(err as Error).message}`);
    return 1;
  }
  if (!targets.length) {
    console.error(`bpfd trace: no node matches ${v.nodes}`);
    return 1;
  }
  // Ctrl-C once: stop the sessions (their maps still come); twice: leave at once.
  const stop = new AbortController();
  const sessions = new Map<Target, string>();
  let stopping = false;
  const interrupt = () => {
    if (stopping || !sessions.size) return stop.abort();
    stopping = true;
    console.error("bpfd trace: stopping; the maps follow (Ctrl-C again to leave now)");
    for (const [target, session] of sessions) {
      call(target, "trace_stop", { session }).then((r) => r.body?.cancel()).catch(() => stop.abort());
    }
  };
  Deno.addSignalListener("SIGINT", interrupt);
  const input = { script, ...(seconds ? { seconds } : {}) };
  const opts = { json: v.output === "json", prefix: !!v.nodes || targets.length > 1, signal: stop.signal };
  try {
    const results = await Promise.all(
      targets.map((t) =>
        traceOn(t, { ...input, ...t.input }, { ...opts, started: (id) => sessions.set(t, id) })
      ),
    );
    return results.every((ok) => ok) ? 0 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", interrupt);
  }
}

function localTarget(v: TraceValues): Target {
  return {
    node: "local",
    url: v.url ?? "http://bpfd",
    client: v.url ? undefined : Deno.createHttpClient({ proxy: { transport: "unix", path: v.socket! } }),
  };
}

/** POSTs a function call to a target. */
function call(target: Target, fn: string, input: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${target.url}/v1/functions/${fn}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...target.headers },
    body: JSON.stringify(input),
    client: target.client,
    signal,
  });
}

/** Runs one session and prints it; false when it could not start or failed. */
async function traceOn(
  target: Target,
  input: Record<string, unknown>,
  opts: { json: boolean; prefix: boolean; signal: AbortSignal; started: (session: string) => void },
): Promise<boolean> {
  const tag = opts.prefix ? `[${target.node}] ` : "";
  let res: Response;
  try {
    res = await call(target, "trace", input, opts.signal);
  } catch (err) {
    console.error(`${tag}bpfd trace: cannot reach ${target.url}: ${(err as Error).message}`);
    return false;
  }
  if (res.status !== 200) {
    const body = await res.json().catch(() => ({}));
    console.error(`${tag}bpfd trace: ${body?.error?.message ?? `HTTP ${res.status}`}`);
    return false;
  }
  let end: Extract<TraceEvent, { end: unknown }>["end"] | undefined;
  try {
    for await (const event of ndjson(res.body!)) {
      if ("session" in event) opts.started(event.session.id);
      if ("end" in event) end = event.end;
      if (opts.json) console.log(JSON.stringify({ node: target.node, ...event }));
      else if ("line" in event) (event.stderr ? console.error : console.log)(`${tag}${event.line}`);
      else if ("session" in event) {
        console.error(`${tag}session ${event.session.id} on ${target.node} until ${event.session.expiresAt}`);
      }
    }
  } catch (err) {
    if (!opts.signal.aborted) console.error(`${tag}bpfd trace: the stream broke: ${(err as Error).message}`);
  } finally {
    target.client?.close();
  }
  if (!opts.json && end) {
    console.error(`${tag}session ended: ${end.reason} (exit status ${end.exitCode ?? "-"})`);
  }
  return ["exited", "expired", "stopped"].includes(end?.reason ?? "") || opts.signal.aborted;
}

/** The events of an NDJSON body. */
export async function* ndjson(body: ReadableStream<Uint8Array>): AsyncGenerator<TraceEvent> {
  let rest = "";
  for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    for (const line of lines) if (line.trim()) yield JSON.parse(line);
  }
  if (rest.trim()) yield JSON.parse(rest);
}
