/**
 * The objects the controller writes, as pure functions: BpfProgram names and their config/node pair, a
 * new BpfProgram for a config on a node, conditions set the way Kubernetes does, and JSON equality (a
 * write happens only when something differs).
 *
 * @example
 * ```ts
 * programName("xdp-pass", "node-a"); // "xdp-pass-node-a"
 * ```
 * @module
 */
import {
  API_VERSION,
  type BpfProgram,
  type BpfProgramConfig,
  type Condition,
  FINALIZER,
  NODE_LABEL,
  OWNING_CONFIG_LABEL,
} from "../crds/schema.ts";

/** The condition type the controller sets on configs and BpfPrograms, and its reasons. */
export const LOADED = "Loaded";
export const REASON_LOADED = "bpfdLoaded";
export const REASON_NOT_LOADED = "bpfdNotLoaded";
export const REASON_NOT_SELECTED = "nodeNotSelected";
export const REASON_PENDING = "bpfdPending";
export const LOADED_MESSAGE = "Successfully loaded BpfProgram";

/** The BpfProgram name for a config on a node (`<config>-<node>`, shortened with a hash past 253). */
export function programName(config: string, node: string): string {
  const name = `${config}-${node}`;
  if (name.length <= 253) return name;
  let h = 0x811c9dc5;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return `${config.slice(0, 120)}-${node.slice(0, 120)}-${h.toString(16)}`;
}

/** The config and node a BpfProgram belongs to. */
export function pairOf(bp: BpfProgram): { config: string; node: string } | undefined {
  const config = bp.metadata.ownerReferences?.find((r: { kind: string }) => r.kind === "BpfProgramConfig")
    ?.name ?? bp.metadata.labels?.[OWNING_CONFIG_LABEL];
  const node = bp.spec?.node;
  return config && node ? { config, node } : undefined;
}

/**
 * Sets `cond` in `conds` the way Kubernetes' meta.SetStatusCondition does: lastTransitionTime changes
 * only when the status changes.
 */
export function setCondition(conds: Condition[] | undefined, cond: Omit<Condition, "lastTransitionTime">) {
  const list = [...(conds ?? [])];
  const i = list.findIndex((c) => c.type === cond.type);
  const old = i >= 0 ? list[i] : undefined;
  const next: Condition = {
    ...cond,
    lastTransitionTime: old && old.status === cond.status
      ? old.lastTransitionTime
      : new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
  };
  if (old?.observedGeneration !== undefined && cond.observedGeneration === undefined) {
    next.observedGeneration = old.observedGeneration;
  }
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

/** Deep equality of JSON values (key order ignored). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => jsonEqual(x, bb[i]));
  }
  const ak = Object.keys(a as object).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const bk = Object.keys(b as object).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ak.length === bk.length &&
    ak.every((k) => jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** Whether an object is being deleted. */
export const isDeleting = (o: { metadata: { deletionTimestamp?: unknown } } | undefined) =>
  !!o?.metadata.deletionTimestamp;

/** A new BpfProgram for `cfg` on `node`: labels, owner reference, finalizer, no programs yet. */
export function newProgram(cfg: BpfProgramConfig, node: string, name: string): BpfProgram {
  const labels: Record<string, string> = {};
  if (cfg.metadata.name.length <= 63) labels[OWNING_CONFIG_LABEL] = cfg.metadata.name;
  if (node.length <= 63) labels[NODE_LABEL] = node;
  return {
    apiVersion: API_VERSION,
    kind: "BpfProgram",
    metadata: {
      name,
      labels,
      finalizers: [FINALIZER],
      ownerReferences: cfg.metadata.uid
        ? [{
          apiVersion: API_VERSION,
          kind: "BpfProgramConfig",
          name: cfg.metadata.name,
          uid: cfg.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        }]
        : undefined,
    },
    spec: { node, programs: {} },
  };
}
