/**
 * A config's status from its BpfPrograms: how many selected nodes run it, which fail (and why), which
 * image digest each node runs, and the `Loaded` condition that sums it up; written only when it changes.
 *
 * @example
 * ```ts
 * const { status, cond } = summarize(cfg, { selected: selectedNodes, mine: bpfProgramsOfCfg });
 * ```
 * @module
 */
import {
  type BpfProgram,
  type BpfProgramConfig,
  type BpfProgramConfigStatus,
  type Condition,
  CONFIG_FINALIZER,
  selectorMatches,
} from "../crds/schema.ts";
import type { NodeInfo } from "./node_client.ts";
import {
  isDeleting,
  jsonEqual,
  LOADED,
  pairOf,
  REASON_LOADED,
  REASON_NOT_LOADED,
  REASON_NOT_SELECTED,
  REASON_PENDING,
  setCondition,
} from "./objects.ts";
import type { ReconcileContext } from "./writer.ts";

/** The status `cfg` should have, given its selected nodes and its BpfPrograms, and its Loaded condition. */
export function summarize(
  cfg: BpfProgramConfig,
  { selected, mine, conditions = [] }: {
    selected: NodeInfo[];
    mine: BpfProgram[];
    /** More conditions to set (the controller's `PolicyAllowed`). */
    conditions?: Omit<Condition, "lastTransitionTime">[];
  },
): { status: BpfProgramConfigStatus; cond: Omit<Condition, "lastTransitionTime"> } {
  const byNode = new Map(mine.map((bp) => [bp.spec.node, bp]));
  const loaded: string[] = [], failing: string[] = [], pending: string[] = [];
  for (const n of selected) {
    const c = byNode.get(n.name)?.status?.conditions?.find((x) => x.type === LOADED);
    if (c?.status === "True") loaded.push(n.name);
    else if (c?.status === "False") failing.push(`${n.name}: ${c.message}`);
    else pending.push(n.name);
  }
  const total = selected.length;
  let cond: Omit<Condition, "lastTransitionTime">;
  if (total === 0) {
    cond = {
      type: LOADED,
      status: "False",
      reason: REASON_NOT_SELECTED,
      message: "no node matches the nodeselector",
    };
  } else if (loaded.length === total) {
    cond = {
      type: LOADED,
      status: "True",
      reason: REASON_LOADED,
      message: `loaded on ${total}/${total} nodes`,
    };
  } else if (failing.length) {
    cond = {
      type: LOADED,
      status: "False",
      reason: REASON_NOT_LOADED,
      message: `loaded on ${loaded.length}/${total} nodes; failing on ${failing.length}: ${
        failing.slice(0, 5).join("; ")
      }${failing.length > 5 ? "; ..." : ""}`,
    };
  } else {
    cond = {
      type: LOADED,
      status: "False",
      reason: REASON_PENDING,
      message: `loaded on ${loaded.length}/${total} nodes; waiting for ${pending.length}`,
    };
  }
  cond.observedGeneration = cfg.metadata.generation;
  const status: BpfProgramConfigStatus = {
    ...cfg.status,
    conditions: conditions.reduce(setCondition, setCondition(cfg.status?.conditions, cond)),
    nodes: { selected: total, loaded: loaded.length, failing: failing.length },
    failingNodes: failing.length ? failing.map((f) => f.slice(0, f.indexOf(":"))).slice(0, 20) : undefined,
    observedGeneration: cfg.metadata.generation,
  };
  if (!status.failingNodes) delete status.failingNodes;
  delete status.digests;
  const digests = digestsOf(selected, byNode);
  if (digests) status.digests = digests;
  return { status, cond };
}

/** Image digest -> the selected nodes whose BpfProgram reports a program loaded from it (sorted). */
function digestsOf(selected: NodeInfo[], byNode: Map<string | undefined, BpfProgram>) {
  const out: Record<string, string[]> = {};
  for (const n of selected) {
    for (const p of Object.values(byNode.get(n.name)?.spec.programs ?? {})) {
      if (p.digest) (out[p.digest] ??= []).push(n.name);
    }
  }
  for (const nodes of Object.values(out)) nodes.sort();
  return Object.keys(out).length ? out : undefined;
}

/**
 * Writes config `name`'s status when it differs (an Event when its Loaded reason changes); a deleting
 * config loses the controller's finalizer once none of its BpfPrograms is left.
 */
export async function writeSummary(
  ctx: ReconcileContext,
  name: string,
  conditions?: (cfg: BpfProgramConfig) => Omit<Condition, "lastTransitionTime">[],
): Promise<void> {
  let cfg = ctx.store.config(name);
  if (!cfg) return;
  const mine = ctx.store.programs().filter((bp) => pairOf(bp)?.config === name);
  if (isDeleting(cfg)) {
    if (mine.length === 0 && (cfg.metadata.finalizers ?? []).includes(CONFIG_FINALIZER)) {
      const cur = cfg;
      await ctx.writer.write(() =>
        ctx.store.updateConfig({
          ...cur,
          metadata: {
            ...cur.metadata,
            finalizers: (cur.metadata.finalizers ?? []).filter((f) => f !== CONFIG_FINALIZER),
          },
        })
      );
    }
    return;
  }
  const selected = ctx.store.nodes().filter((n) => selectorMatches(cfg!.spec.nodeselector, n.labels));
  const { status, cond } = summarize(cfg, { selected, mine, conditions: conditions?.(cfg) });
  if (jsonEqual(status, cfg.status ?? {})) return;
  const old = cfg.status?.conditions?.find((c) => c.type === LOADED);
  const cur = cfg;
  cfg = await ctx.writer.write(() => ctx.store.updateConfigStatus({ ...cur, status }));
  if ((!old || old.reason !== cond.reason) && cond.reason !== REASON_PENDING) {
    await ctx.writer.event({
      kind: "BpfProgramConfig",
      name,
      uid: cfg.metadata.uid,
      type: cond.status === "True" ? "Normal" : "Warning",
      reason: cond.reason,
      message: cond.message,
    });
  }
}
