/**
 * The node inventory (`BpfNodeInventory`, one cluster-scoped object per node, named after the node):
 * every BPF program in the node's kernel, managed by bpfd or not, where each is attached, who holds the
 * ones bpfd did not load (process, container, pod) and who asked for the ones it did (config, caller,
 * metadata). Written by the node runtime (runtime/inventory*.ts), read by `bpfd list --cluster` and the
 * controller's page. docs/inventory.md describes the fields and the size limit.
 *
 * @example
 * ```ts
 * summarize(programs); // { programs: 12, managed: 2, unmanaged: 10, types: { xdp: "2/1" } }
 * ownerOf(program); // "config xdp-counter (system:serviceaccount:bpfd:bpfd-controller)"
 * ```
 * @module
 */
import { z } from "./zod.ts";
import { HookChainView, InventoryAttachment, InventoryHolder } from "./schemas.ts";

export { InventoryAttachment, InventoryHolder };

/** The kind, its plural and the group/version it is served as. */
export const INVENTORY = {
  kind: "BpfNodeInventory",
  plural: "bpfnodeinventories",
  singular: "bpfnodeinventory",
  group: "bpfd.io",
  version: "v1alpha1",
} as const;

/** Who asked bpfd for a program it manages. */
export const InventoryOwner = z.object({
  /** The BpfProgramConfig, when the controller loaded it. */
  config: z.optional(z.string()),
  /** The BpfProgram object of that config for this node. */
  bpfProgram: z.optional(z.string()),
  loadedBy: z.string(),
  via: z.string(),
  bytecode: z.string(),
  metadata: z._default(z.record(z.string(), z.string()), {}),
});
export type InventoryOwner = z.infer<typeof InventoryOwner>;

/** One program in the node's kernel. */
export const InventoryProgram = z.object({
  id: z.int(),
  name: z.string(),
  /** The kernel's program type (xdp, sched_cls, kprobe, cgroup_skb, ...). */
  type: z.string(),
  tag: z.string(),
  loadedAt: z.string(),
  uid: z.int(),
  managed: z.boolean(),
  mapIds: z._default(z.array(z.int()), []),
  attachments: z._default(z.array(InventoryAttachment), []),
  holders: z.optional(z.array(InventoryHolder)),
  owner: z.optional(InventoryOwner),
});
export type InventoryProgram = z.infer<typeof InventoryProgram>;

/** Counts for the printer columns: programs, managed, unmanaged, and "managed/unmanaged" per type. */
export const InventorySummary = z.object({
  programs: z.int(),
  managed: z.int(),
  unmanaged: z.int(),
  types: z._default(z.record(z.string(), z.string()), {}),
});
export type InventorySummary = z.infer<typeof InventorySummary>;

/** The whole inventory of one node. */
export const BpfNodeInventorySpec = z.object({
  node: z.string(),
  /** When the runtime took this snapshot. */
  observedAt: z.string(),
  summary: InventorySummary,
  programs: z._default(z.array(InventoryProgram), []),
  /** Each network hook bpfd manages a chain on, with everything that runs there in run order. */
  hooks: z._default(z.array(HookChainView), []),
  /** Programs left out to stay within the API server's object size limit (docs/inventory.md). */
  omitted: z._default(z.int(), 0),
});
export type BpfNodeInventorySpec = z.infer<typeof BpfNodeInventorySpec>;

/** Status: conditions, for tools that add them (the runtime writes the spec only). */
export const BpfNodeInventoryStatus = z.object({
  conditions: z.optional(z.array(z.object({
    type: z.string(),
    status: z.string(),
    reason: z.optional(z.string()),
    message: z.optional(z.string()),
    lastTransitionTime: z.optional(z.string()),
  }))),
});

/** The printer columns of `kubectl get bpfnodeinventories`. */
export const INVENTORY_COLUMNS = [
  { name: "Programs", type: "integer", jsonPath: ".spec.summary.programs" },
  { name: "Managed", type: "integer", jsonPath: ".spec.summary.managed" },
  { name: "Unmanaged", type: "integer", jsonPath: ".spec.summary.unmanaged" },
  ...["xdp", "sched_cls", "tracing", "kprobe", "tracepoint", "cgroup_skb"].map((t) => ({
    name: t === "sched_cls" ? "TC" : t.toUpperCase(),
    type: "string",
    jsonPath: `.spec.summary.types.${t}`,
    description: `${t} programs, managed/unmanaged`,
  })),
  { name: "Omitted", type: "integer", jsonPath: ".spec.omitted", priority: 1 },
  { name: "Observed", type: "date", jsonPath: ".spec.observedAt" },
];

/** The summary of a list of programs. */
export function summarize(programs: InventoryProgram[]): InventorySummary {
  const byType = new Map<string, [number, number]>();
  let managed = 0;
  for (const p of programs) {
    const counts = byType.get(p.type) ?? [0, 0];
    counts[p.managed ? 0 : 1]++;
    byType.set(p.type, counts);
    if (p.managed) managed++;
  }
  const types = Object.fromEntries([...byType].sort().map(([t, [m, u]]) => [t, `${m}/${u}`]));
  return { programs: programs.length, managed, unmanaged: programs.length - managed, types };
}

/** A short phrase for one attachment (`xdp eth0 link 7`, `cgroup_inet_ingress /sys.slice`). */
export function describeAttachment(a: InventoryAttachment): string {
  return [
    a.kind,
    a.attachType,
    a.iface,
    a.mode,
    a.cgroup,
    a.target,
    a.netnsIno ? `netns ${a.netnsIno}` : undefined,
    a.linkId ? `link ${a.linkId}` : undefined,
  ].filter(Boolean).join(" ");
}

/** Who put a program there: the config and caller for bpfd's, the holding processes and pods for others. */
export function ownerOf(p: InventoryProgram): string {
  if (p.owner) {
    return p.owner.config ? `config ${p.owner.config} (${p.owner.loadedBy})` : p.owner.loadedBy;
  }
  const holders = (p.holders ?? []).map((h) =>
    `${h.comm}[${h.pid}]${h.pod ? ` pod ${h.pod}${h.container ? ` container ${h.container}` : ""}` : ""}`
  );
  return holders.join(", ") || `uid ${p.uid}`;
}
