/**
 * Lets a BpfProgram go: the node unloads what it has for it, an Event tells the config why (node no
 * longer selected, BpfProgram deleted, config gone), then the finalizer comes off and it is deleted.
 *
 * @example
 * ```ts
 * await retire(ctx, bp, { cfg, node, why: "unselected" });
 * ```
 * @module
 */
import { type BpfProgram, type BpfProgramConfig, FINALIZER } from "../crds/schema.ts";
import type { NodeInfo } from "./node_client.ts";
import { isDeleting, LOADED, REASON_NOT_LOADED, REASON_NOT_SELECTED } from "./objects.ts";
import type { ReconcileContext } from "./writer.ts";

/** Why a BpfProgram goes. */
export type RetireReason = "unselected" | "deleted" | "gone";

/** Unloads a BpfProgram's programs on its node, then lets it go (finalizer off, deleted). */
export async function retire(
  ctx: ReconcileContext,
  bp: BpfProgram,
  { cfg, node, why }: { cfg: BpfProgramConfig | undefined; node: NodeInfo | undefined; why: RetireReason },
): Promise<void> {
  const name = bp.metadata.name;
  if (node && (bp.metadata.finalizers ?? []).includes(FINALIZER)) {
    try {
      ctx.writer.stats.nodeCalls++;
      const out = await ctx.nodes.reconcile(node, { name, spec: null });
      if (out.changed) {
        ctx.log().info("node unloaded", { bpfProgram: name, node: node.name, actions: out.actions });
      }
    } catch (err) {
      ctx.writer.stats.nodeErrors++;
      const reason = why === "unselected" ? REASON_NOT_SELECTED : REASON_NOT_LOADED;
      await ctx.writer.setProgramCondition(bp, {
        type: LOADED,
        status: "False",
        reason,
        message: `unloading failed: ${(err as Error).message}`,
      });
      throw err;
    }
  }
  if (cfg && !isDeleting(cfg)) {
    const message = why === "unselected"
      ? `node ${node?.name} no longer selected: unloaded`
      : why === "deleted"
      ? `BpfProgram ${name} deleted: unloaded from ${node?.name}`
      : `unloaded from ${node?.name ?? bp.spec.node}`;
    await ctx.writer.event({
      kind: "BpfProgramConfig",
      name: cfg.metadata.name,
      uid: cfg.metadata.uid,
      type: "Normal",
      reason: why === "unselected" ? REASON_NOT_SELECTED : "Unloaded",
      message,
    });
  }
  if ((bp.metadata.finalizers ?? []).includes(FINALIZER)) {
    const cur = bp;
    bp = await ctx.writer.write(() =>
      ctx.store.updateProgram({
        ...cur,
        metadata: {
          ...cur.metadata,
          finalizers: (cur.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
        },
      })
    );
  }
  // Not yet being deleted: delete it (with the finalizer off it goes at once).
  if (!isDeleting(bp)) await ctx.writer.write(() => ctx.store.deleteProgram(bp));
}
