/**
 * One snapshot of the node's inventory: every program in the kernel as `list --all` shows it (bpfd's own
 * links and owner for the programs it manages; for the others where the kernel says they are attached and
 * the processes holding them), with those processes' pods; each hook's chain. Cut to a byte budget
 * (managed programs first, then by id), the rest counted in `omitted`.
 *
 * @example
 * ```ts
 * const snap = await takeInventory(node, { nodeName: "node-a" });
 * snap.spec.summary; // { programs: 12, managed: 2, unmanaged: 10, types: { xdp: "2/1", ... } }
 * ```
 * @module
 */
import { FUNCTIONS, invoke } from "../functions/mod.ts";
import {
  type BpfNodeInventorySpec,
  type InventoryAttachment,
  type InventoryHolder,
  type InventoryProgram,
  summarize,
} from "../model/inventory.ts";
import { CONFIG_KEY, OWNER_KEY } from "../model/names.ts";
import type { HookChainView, LinkRecord, ProgramRecord, ProgramView } from "../model/schemas.ts";
import type { Node } from "./ctx.ts";

/** A pod of this node, found by its UID or by one of its containers' ids. */
export interface PodRef {
  /** namespace/name */
  pod: string;
  podUid: string;
  /** The container's name, when found by its id. */
  container?: string;
}

/** Options of {@link takeInventory}. */
export interface InventoryOptions {
  nodeName: string;
  /** The pod of this node with this UID or container id, when known. */
  podOf?: (key: string) => PodRef | undefined;
  /** The most the spec may take as JSON (default 1,000,000 bytes: the API server stores up to ~1.5 MiB). */
  maxBytes?: number;
  /** Read holders from /proc (default true). */
  holders?: boolean;
}

/** A snapshot: the spec to write and the unmanaged programs found on bpfd's hooks. */
export interface InventorySnapshot {
  spec: BpfNodeInventorySpec;
  /** Programs bpfd does not manage that run on a hook where it manages a chain. */
  intruders: Array<{ hook: string; programId: number; name: string }>;
}

/** A bpfd link as an inventory attachment. */
function recordAttachment(link: LinkRecord): InventoryAttachment {
  const a = link.attach;
  const base: InventoryAttachment = {
    kind: a.type,
    ...(link.kernelLinkId ? { linkId: link.kernelLinkId } : {}),
  };
  switch (a.type) {
    case "xdp":
      return { ...base, iface: a.netns ? `${a.iface}@${a.netns}` : a.iface };
    case "tc":
    case "tcx":
      return { ...base, iface: a.netns ? `${a.iface}@${a.netns}` : a.iface, attachType: a.direction };
    case "tracepoint":
      return { ...base, target: a.tracepoint };
    case "uprobe":
    case "uretprobe":
      return { ...base, target: `${a.target}:${a.fnName ?? ""}` };
    default:
      return "fnName" in a && a.fnName ? { ...base, target: String(a.fnName) } : base;
  }
}

function owner(record: ProgramRecord): InventoryProgram["owner"] {
  const config = record.metadata[CONFIG_KEY];
  const bpfProgram = record.reconciledFor ?? record.metadata[OWNER_KEY];
  const bytecode = "path" in record.bytecode
    ? record.bytecode.path
    : `${record.bytecode.image.url}@${record.bytecode.image.digest}`;
  return {
    ...(config ? { config } : {}),
    ...(bpfProgram ? { bpfProgram } : {}),
    loadedBy: record.loadedBy.user,
    via: record.loadedBy.via,
    bytecode,
    metadata: record.metadata,
  };
}

function inventoryProgram(
  view: ProgramView,
  withPod: (holder: InventoryHolder) => InventoryHolder,
): InventoryProgram | undefined {
  const k = view.kernel;
  if (!k) return undefined; // gone behind bpfd's back: `list` shows it, the kernel does not have it
  const p: InventoryProgram = {
    id: view.id,
    name: view.program?.name ?? k.name,
    type: k.type,
    tag: k.tag,
    loadedAt: k.loadedAt,
    uid: k.uid,
    managed: view.managed,
    mapIds: k.mapIds,
    attachments: view.managed
      ? view.links.filter((l) => !l.pending).map(recordAttachment)
      : view.attachments ?? [],
  };
  if (view.program) p.owner = owner(view.program);
  else if (view.holders) p.holders = view.holders.map(withPod);
  return p;
}

/** Keeps managed programs, then the others by id, while the JSON stays under `maxBytes`. */
export function fitToSize(
  programs: InventoryProgram[],
  fixedBytes: number,
  maxBytes: number,
): { kept: InventoryProgram[]; omitted: number } {
  const byId = [...programs].sort((a, b) => a.id - b.id);
  const order = [...byId.filter((p) => p.managed), ...byId.filter((p) => !p.managed)];
  let total = fixedBytes;
  const kept: InventoryProgram[] = [];
  for (const p of order) {
    const size = JSON.stringify(p).length + 1;
    if (total + size > maxBytes) break;
    total += size;
    kept.push(p);
  }
  kept.sort((a, b) => a.id - b.id);
  return { kept, omitted: programs.length - kept.length };
}

/** Takes one snapshot of the node's inventory. */
export async function takeInventory(node: Node, opts: InventoryOptions): Promise<InventorySnapshot> {
  const list = await FUNCTIONS.get("list")!();
  const ctx = node.ctxFor({ user: "bpfd", via: "inventory" });
  const out = await invoke(list, { all: true, holders: opts.holders !== false }, ctx) as {
    programs: ProgramView[];
    hooks: HookChainView[];
  };
  const withPod = (h: InventoryHolder): InventoryHolder => {
    const ref = (h.containerId ? opts.podOf?.(h.containerId) : undefined) ??
      (h.podUid ? opts.podOf?.(h.podUid) : undefined);
    if (!ref) return h;
    return { ...h, podUid: ref.podUid, pod: ref.pod, ...(ref.container ? { container: ref.container } : {}) };
  };
  const programs = out.programs.map((v) => inventoryProgram(v, withPod))
    .filter((p): p is InventoryProgram => !!p);
  const intruders = out.hooks.flatMap((h) =>
    h.chain.filter((e) => !e.managed).map((e) => ({ hook: h.hook, programId: e.programId, name: e.name }))
  );
  const base = {
    node: opts.nodeName,
    observedAt: new Date().toISOString(),
    summary: summarize(programs),
    hooks: out.hooks,
  };
  const { kept, omitted } = fitToSize(
    programs,
    JSON.stringify(base).length + 200,
    opts.maxBytes ?? 1_000_000,
  );
  return { spec: { ...base, programs: kept, omitted }, intruders };
}
