/**
 * For an application's per-node agent (the seed's deployment models 2 and 3): find this node's
 * BpfProgram for a BpfProgramConfig, wait until the node reports it Loaded, and get the absolute pin paths
 * of its maps. Needs only read access to BpfPrograms (the ClusterRole `bpfd-bpfprogram-viewer`) and,
 * to open the maps, membership of group `bpfd` (map pins are 0640 root:bpfd) — no CAP_BPF.
 *
 * @example
 * ```ts
 * const found = await findNodeProgram({ kc, config: "xdp-counter" });   // node: $NODE_NAME or hostname
 * const packets = readMapU64(found.maps.xdp_packets, 0);
 * ```
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { type BpfProgram, GROUP, NODE_LABEL, OWNING_CONFIG_LABEL, VERSION } from "../crds/schema.ts";

/** One program of a node's BpfProgram, with its maps' pin paths. */
export interface NodeProgramEntry {
  /** The kernel's program id on that node. */
  id: number;
  name?: string;
  type?: string;
  /** Map name → absolute pin path (rebased with `bpffs`, when given). */
  maps: Record<string, string>;
  mappinpath?: string;
}

/** What `findNodeProgram` found. */
export interface NodeProgram {
  node: string;
  config: string;
  /** The BpfProgram object, as the controller wrote it. */
  bpfProgram: BpfProgram;
  programs: NodeProgramEntry[];
  /** Every map of every program, by name → absolute pin path. */
  maps: Record<string, string>;
}

export interface FindOptions {
  kc: k8s.KubeConfig;
  /** The BpfProgramConfig's name. */
  config: string;
  /** The node (default: $NODE_NAME — set it from the downward API `spec.nodeName` — else the hostname). */
  node?: string;
  /** Where the node's bpffs is mounted here, if not at the same path: `{node: "/run/bpfd/fs", local: "/bpfd"}`. */
  bpffs?: { node: string; local: string };
  /** How long to wait for the program to be Loaded (default 60 s; 0: look once). */
  timeoutMs?: number;
  /** Poll interval (default 500 ms). */
  intervalMs?: number;
  signal?: AbortSignal;
}

/** Why a program was not found (yet): the last state seen. */
export class NotLoadedError extends Error {
  constructor(message: string, readonly bpfProgram?: BpfProgram) {
    super(message);
    this.name = "NotLoadedError";
  }
}

function rebase(path: string, bpffs: FindOptions["bpffs"]): string {
  if (!bpffs) return path;
  const from = bpffs.node.replace(/\/+$/, "");
  if (path !== from && !path.startsWith(from + "/")) return path;
  return bpffs.local.replace(/\/+$/, "") + path.slice(from.length);
}

function loadedCondition(bp: BpfProgram) {
  return bp.status?.conditions?.find((c) => c.type === "Loaded");
}

/** The node's BpfProgram for `config`, or undefined. */
export async function getNodeProgram(
  kc: k8s.KubeConfig,
  config: string,
  node: string,
): Promise<BpfProgram | undefined> {
  const api = kc.makeApiClient(k8s.CustomObjectsApi);
  const list = await api.listClusterCustomObject({
    group: GROUP,
    version: VERSION,
    plural: "bpfprograms",
    ...(node.length <= 63 ? { labelSelector: `${NODE_LABEL}=${node}` } : {}),
  }) as { items: BpfProgram[] };
  return list.items.find((bp) =>
    (bp.spec.node === node || bp.metadata.labels?.[NODE_LABEL] === node) &&
    (bp.metadata.labels?.[OWNING_CONFIG_LABEL] === config ||
      (bp.metadata.ownerReferences ?? []).some((r) => r.kind === "BpfProgramConfig" && r.name === config))
  );
}

/** The entry `findNodeProgram` returns for a Loaded BpfProgram. */
export function describeNodeProgram(
  bp: BpfProgram,
  config: string,
  node: string,
  bpffs?: FindOptions["bpffs"],
): NodeProgram {
  const programs = Object.entries(bp.spec.programs ?? {}).map(([id, p]) => ({
    id: Number(id),
    name: p.name,
    type: p.type,
    maps: Object.fromEntries(Object.entries(p.maps ?? {}).map(([m, path]) => [m, rebase(path, bpffs)])),
    mappinpath: p.mappinpath === undefined ? undefined : rebase(p.mappinpath, bpffs),
  }));
  const maps: Record<string, string> = {};
  for (const p of programs) Object.assign(maps, p.maps);
  return { node, config, bpfProgram: bp, programs, maps };
}

/**
 * Waits until this node's BpfProgram for `config` is Loaded (condition Loaded=True, programs present)
 * and returns its programs and absolute map pin paths. Throws NotLoadedError with the node's last message
 * after `timeoutMs`.
 */
export async function findNodeProgram(opts: FindOptions): Promise<NodeProgram> {
  const node = opts.node ?? Deno.env.get("NODE_NAME") ?? Deno.hostname();
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let last = `no BpfProgram for config ${opts.config} on node ${node} yet`;
  let lastBp: BpfProgram | undefined;
  while (true) {
    opts.signal?.throwIfAborted();
    const bp = await getNodeProgram(opts.kc, opts.config, node);
    if (bp) {
      lastBp = bp;
      const cond = loadedCondition(bp);
      const count = Object.keys(bp.spec.programs ?? {}).length;
      if (cond?.status === "True" && count > 0 && !bp.metadata.deletionTimestamp) {
        return describeNodeProgram(bp, opts.config, node, opts.bpffs);
      }
      last = cond
        ? `BpfProgram ${bp.metadata.name} is not loaded: ${cond.reason}: ${cond.message}`
        : `BpfProgram ${bp.metadata.name} has no Loaded condition yet`;
    }
    if (Date.now() >= deadline) throw new NotLoadedError(last, lastBp);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 500));
  }
}
