/**
 * `bpfd list --cluster` and `bpfd get --node NODE ID`: the programs of every node (or one), read from
 * the node inventories on the API server with the user's own kubeconfig, so RBAC decides what they see.
 *
 * @example
 * ```sh
 * bpfd list --cluster --kubeconfig ~/.kube/config
 * bpfd list --cluster --node node-a --type xdp
 * bpfd get --node node-a 42 -o json
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import {
  clusterConfig,
  ClusterReadError,
  NodeInventories,
  type NodeInventory,
} from "../client/inventories.ts";
import { describeAttachment, type InventoryProgram, ownerOf } from "../model/inventory.ts";
import { table } from "./table.ts";

const OPTIONS = {
  cluster: { type: "boolean" },
  node: { type: "string" },
  kubeconfig: { type: "string" },
  token: { type: "string" },
  ca: { type: "string" },
  server: { type: "string" },
  type: { type: "string" },
  namespace: { type: "string" },
  output: { type: "string", short: "o", default: "table" },
  help: { type: "boolean", short: "h" },
  all: { type: "boolean" },
} as const;

/** The usage lines of the cluster commands. */
export const CLUSTER_USAGE =
  `  list --cluster [--node NODE] [--type TYPE] [--namespace NS]   (every node's inventory)
  get  --node NODE PROGRAM_ID
  cluster options: --kubeconfig FILE, --token TOKEN, --ca FILE, --server URL (default: $KUBECONFIG,
  in-cluster, ~/.kube/config)`;

/** True when the command line asks for the cluster (`--cluster`, or `--node`). */
export function isClusterCommand(args: string[]): boolean {
  return args.some((a) => a === "--cluster" || a === "--node" || a.startsWith("--node="));
}

/** The rows of `list --cluster`, filtered by type and by the namespace of holders' pods. */
export function clusterRows(
  invs: NodeInventory[],
  filter: { type?: string; namespace?: string },
): string[][] {
  const rows: string[][] = [];
  for (const inv of invs) {
    for (const p of inv.spec.programs) {
      if (filter.type && p.type !== filter.type) continue;
      if (filter.namespace && !(p.holders ?? []).some((h) => h.pod?.startsWith(`${filter.namespace}/`))) {
        continue;
      }
      rows.push([
        inv.metadata.name,
        String(p.id),
        p.name,
        p.type,
        p.managed ? "yes" : "no",
        p.attachments.map(describeAttachment).join("; "),
        ownerOf(p),
      ]);
    }
    if (inv.spec.omitted) {
      rows.push([inv.metadata.name, "…", `${inv.spec.omitted} more not listed`, "", "", "", ""]);
    }
  }
  return rows;
}

function detail(inv: NodeInventory, p: InventoryProgram): string {
  const lines: Array<[string, string]> = [
    ["Node", inv.metadata.name],
    ["ID", String(p.id)],
    ["Name", p.name],
    ["Type", p.type],
    ["Tag", p.tag],
    ["Managed by bpfd", p.managed ? "yes" : "no"],
    ["Loaded at", p.loadedAt],
    ["Loaded by uid", String(p.uid)],
    ["Map ids", p.mapIds.join(", ") || "-"],
    ["Attachments", p.attachments.map(describeAttachment).join("\n" + " ".repeat(18)) || "-"],
  ];
  if (p.owner) {
    lines.push(
      ["Config", p.owner.config ?? "-"],
      ["BpfProgram", p.owner.bpfProgram ?? "-"],
      ["Loaded by", `${p.owner.loadedBy} (${p.owner.via})`],
      ["Bytecode", p.owner.bytecode],
      ["Metadata", Object.entries(p.owner.metadata).map(([k, v]) => `${k}=${v}`).join(", ") || "-"],
    );
  }
  if (p.holders) {
    lines.push([
      "Held by",
      p.holders.map((h) =>
        `pid ${h.pid} (${h.comm})${h.pod ? ` pod ${h.pod}` : ""}${
          h.containerId ? ` container ${h.containerId.slice(0, 12)}` : ""
        }`
      ).join("\n" + " ".repeat(18)),
    ]);
  }
  return lines.map(([k, v]) => `${k.padEnd(16)}  ${v}`).join("\n");
}

/** Runs `list --cluster` or `get --node`; returns the exit status. */
export async function runClusterCli(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    console.error(`bpfd: ${(err as Error).message}\n\n${CLUSTER_USAGE}`);
    return 2;
  }
  const v = parsed.values;
  const [command, id] = parsed.positionals;
  if (v.help || (command !== "list" && command !== "get") || (command === "get" && (!v.node || !id))) {
    console.log(`usage:\n${CLUSTER_USAGE}`);
    return v.help ? 0 : 2;
  }
  try {
    const inventories = new NodeInventories(
      clusterConfig({ kubeconfig: v.kubeconfig, token: v.token, ca: v.ca, server: v.server }),
    );
    const invs = v.node
      ? [await inventories.get(v.node)].filter((i): i is NodeInventory => !!i)
      : await inventories.list();
    if (v.node && invs.length === 0) {
      console.error(`bpfd: node ${v.node} has no inventory (is its runtime running with the inventory on?)`);
      return 1;
    }
    if (command === "get") {
      const p = invs[0].spec.programs.find((p) => p.id === Number(id));
      if (!p) {
        console.error(`bpfd: node ${v.node} has no program ${id}`);
        return 1;
      }
      console.log(v.output === "json" ? JSON.stringify(p, null, 2) : detail(invs[0], p));
      return 0;
    }
    if (v.output === "json") {
      console.log(JSON.stringify(invs.map((i) => i.spec), null, 2));
      return 0;
    }
    const rows = clusterRows(invs, { type: v.type, namespace: v.namespace });
    console.log(table(["NODE", "ID", "NAME", "TYPE", "BPFD", "ATTACHED", "OWNER"], rows));
    return 0;
  } catch (err) {
    if (err instanceof ClusterReadError) {
      console.error(
        `bpfd: the API server refused: ${err.message}${err.status ? ` (HTTP ${err.status})` : ""}`,
      );
      return 1;
    }
    console.error(`bpfd: cannot read the inventories: ${(err as Error).message}`);
    return 1;
  }
}
