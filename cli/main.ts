/**
 * `bpfd`: the command line for a node runtime. Talks to it over the unix socket (or `--url`), prints
 * readable tables by default and the functions' JSON with `-o json`.
 *
 * @example
 * ```sh
 * deno task cli load --path $PWD/bytecode/build/xdp_counter.bpf.o --program xdp_counter:xdp
 * deno task cli attach 42 xdp --iface eth0
 * deno task cli list --all
 * ```
 * @module
 */
import "../lib/quiet_deprecations.ts"; // first: before @kubernetes/client-node loads Node's punycode
import { parseCommandLine, requestFor, USAGE, UsageError, type Values } from "./args.ts";
import { isClusterCommand } from "./cluster.ts";
import { table } from "./table.ts";
import { describeAttachment } from "../model/inventory.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** Where a link is attached, in one short phrase (`xdp veth0@ns1 prio 50`). */
function describeAttach(a: Json): string {
  const at = (iface: string, netns?: string) => netns ? `${iface}@${netns}` : iface;
  switch (a.type) {
    case "xdp":
      return `xdp ${at(a.iface, a.netns)} prio ${a.priority}`;
    case "tc":
    case "tcx":
      return `${a.type} ${at(a.iface, a.netns)} ${a.direction} prio ${a.priority}`;
    case "tracepoint":
    case "raw_tracepoint":
      return `${a.type} ${a.tracepoint}`;
    case "perf_event":
      return `perf_event ${a.event} cpu ${a.cpu} ${
        a.period ? `every ${a.period}` : `${a.frequency ?? 49} Hz`
      }`;
    case "kprobe":
    case "kretprobe":
      return `${a.type} ${a.fnName}${a.offset ? `+${a.offset}` : ""}`;
    case "uprobe":
    case "uretprobe":
      return `${a.type} ${a.target}:${a.fnName ?? ""}${a.offset ? `+${a.offset}` : ""}${
        a.pid ? ` pid ${a.pid}` : ""
      }`;
    default:
      return a.type;
  }
}

/** The processes holding a program bpfd does not manage (`list --all`), if any. */
function heldBy(p: Json): string | undefined {
  const holders = (p.holders ?? []).map((h: Json) => `${h.comm}[${h.pid}]`);
  return holders.length ? holders.join(", ") : undefined;
}

function programRows(programs: Json[]): string {
  return table(
    ["ID", "NAME", "TYPE", "BPFD", "LOADED AT", "LOADED BY", "LINKS", "METADATA"],
    programs.map((p) => [
      String(p.id),
      p.program?.name ?? p.kernel?.name ?? "",
      p.program?.type ?? p.kernel?.type ?? "",
      p.managed ? "yes" : p.session ? `session ${p.session.id} until ${p.session.expiresAt}` : "no",
      (p.kernel?.loadedAt ?? p.program?.loadedAt ?? "").replace(/\.\d+Z$/, "Z"),
      p.program?.loadedBy.user ?? p.session?.startedBy.user ?? heldBy(p) ?? `uid ${p.kernel?.uid}`,
      p.managed
        ? p.links.map((l: Json) => `${l.id}: ${describeAttach(l.attach)}`).join("; ")
        : (p.attachments ?? []).map(describeAttachment).join("; "),
      Object.entries(p.program?.metadata ?? {}).map(([k, v]) => `${k}=${v}`).join(","),
    ]),
  );
}

/** Each hook's chain in run order: position, program, priority, proceed-on, who manages it. */
function hookRows(hooks: Json[]): string {
  return hooks.map((h) => {
    const how = h.dispatcherId ? `dispatcher ${h.dispatcherId}` : h.type === "tcx" ? "tcx links" : "direct";
    const title = `${h.hook} (${how})`;
    const rows = h.chain.map((e: Json) => [
      String(e.position),
      String(e.programId),
      e.name,
      String(e.priority),
      e.proceedOn.join(","),
      e.managed ? `link ${e.linkId}` : "not bpfd's",
    ]);
    return `${title}\n${table(["POS", "PROGRAM", "NAME", "PRIORITY", "PROCEED-ON", "BPFD"], rows)}`;
  }).join("\n\n");
}

function programDetail(p: Json): string {
  const lines: Array<[string, string]> = [["ID", String(p.id)], [
    "Managed by bpfd",
    p.managed ? "yes" : "no",
  ]];
  if (p.program) {
    const r = p.program;
    lines.push(
      ["Name", r.name],
      ["Type", r.type],
      ["Tag", r.tag],
      ["Bytecode", r.bytecode.path ?? `${r.bytecode.image.url}@${r.bytecode.image.digest}`],
      ["Loaded by", `${r.loadedBy.user} (${r.loadedBy.via}) at ${r.loadedAt}`],
      ["Metadata", Object.entries(r.metadata).map(([k, v]) => `${k}=${v}`).join(", ") || "-"],
      ["Map pin path", r.mapPinPath],
      ["Maps", Object.entries(r.maps).map(([k, v]) => `${k} → ${v}`).join("\n" + " ".repeat(18)) || "-"],
    );
    if (r.mapOwnerId) lines.push(["Map owner", String(r.mapOwnerId)]);
  }
  if (p.kernel) {
    const k = p.kernel;
    lines.push(
      ["Kernel type", k.type],
      ["Kernel name", k.name],
      ["Kernel tag", k.tag],
      ["Loaded at", k.loadedAt],
      ["Loaded by uid", String(k.uid)],
      ["Map ids", k.mapIds.join(", ") || "-"],
      ["Size", `xlated ${k.bytesXlated} B, jited ${k.bytesJited} B, ${k.verifiedInsns} verified insns`],
    );
  } else {
    lines.push(["Kernel", "not loaded (gone behind bpfd's back)"]);
  }
  lines.push([
    "Links",
    p.links.map((l: Json) => `${l.id}: ${describeAttach(l.attach)}`).join("\n" + " ".repeat(18)) || "-",
  ]);
  return lines.map(([k, v]) => `${k.padEnd(16)}  ${v}`).join("\n");
}

/** Renders a function's answer as a person reads it. */
export function render(fn: string, out: Json): string {
  switch (fn) {
    case "list":
      return out.hooks?.length
        ? `${programRows(out.programs)}\n\n${hookRows(out.hooks)}`
        : programRows(out.programs);
    case "load":
      return programRows(out.programs);
    case "get":
      return programDetail(out);
    case "attach":
      return `attached program ${out.programId} as link ${out.linkId}${
        out.kernelLinkId ? ` (kernel link ${out.kernelLinkId})` : ""
      }: ${describeAttach(out.attach)}`;
    case "modify":
      return `modified link ${out.linkId} of program ${out.programId}: ${describeAttach(out.attach)}`;
    case "detach":
      return `detached link ${out.linkId} of program ${out.programId}`;
    case "unload":
      return `unloaded program ${out.programId}${
        out.detachedLinks.length ? ` (detached links ${out.detachedLinks.join(", ")})` : ""
      }`;
    default:
      return JSON.stringify(out, null, 2);
  }
}

async function call(v: Values, fn: string, input: Json): Promise<{ status: number; body: Json }> {
  const client = v.url ? undefined : Deno.createHttpClient({ proxy: { transport: "unix", path: v.socket! } });
  try {
    const res = await fetch(`${v.url ?? "http://bpfd"}/v1/functions/${fn}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(input),
      client,
    });
    return { status: res.status, body: await res.json() };
  } finally {
    client?.close();
  }
}

/** Runs the CLI with `args`; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  // trace has its own --node (before the inventory's cluster commands, which also take --node).
  if (args[0] === "trace") return await (await import("./trace.ts")).runTraceCli(args.slice(1));
  if (isClusterCommand(args)) return await (await import("./cluster.ts")).runClusterCli(args);
  if (args[0] === "image") {
    const { runImageCli } = await import("./image.ts");
    return await runImageCli(args.slice(1));
  }
  if (args[0] === "policy") return await (await import("./policy.ts")).runPolicyCli(args.slice(1));
  let values: Values, request: { fn: string; input: Json };
  try {
    const parsed = parseCommandLine(args);
    values = parsed.values;
    if (values.help || !parsed.command) {
      console.log(USAGE);
      return values.help ? 0 : 2;
    }
    request = requestFor(parsed.command, parsed.rest, values);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`bpfd: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  let answer;
  try {
    answer = await call(values, request.fn, request.input);
  } catch (err) {
    console.error(
      `bpfd: cannot reach the runtime at ${values.url ?? values.socket}: ${(err as Error).message}`,
    );
    return 1;
  }
  if (answer.status !== 200) {
    const e = answer.body?.error ?? {};
    if (values.output === "json") console.log(JSON.stringify(answer.body, null, 2));
    else {
      console.error(`bpfd: ${e.message ?? `HTTP ${answer.status}`}`);
      if (e.verifierLog) console.error(`verifier log:\n${e.verifierLog}`);
    }
    return 1;
  }
  console.log(
    values.output === "json" ? JSON.stringify(answer.body, null, 2) : render(request.fn, answer.body),
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
