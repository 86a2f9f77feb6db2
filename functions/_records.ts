/**
 * Keeping bpfd's records true to the kernel: the records of programs and links that vanished behind
 * bpfd's back (unloaded or detached by someone else) are dropped. Used by `reconcile` and by the
 * runtime's recovery at start (through mod.ts).
 *
 * @example
 * ```ts
 * const gone = await pruneVanished(ctx);
 * for (const id of gone.programs) log.warn("program gone", { id });
 * ```
 * @module
 */
import type { LinkRecord } from "../model/schemas.ts";
import type { Ctx } from "./_ctx.ts";

/** What vanished: program ids (their links went with them) and links detached behind bpfd's back. */
export interface Vanished {
  programs: number[];
  links: LinkRecord[];
}

/**
 * Drops the records of the programs in `programIds` (default: all) that the kernel no longer has, with
 * their links, and of their links that are no longer attached. Pending links are left to the caller.
 */
export async function pruneVanished(
  ctx: Pick<Ctx, "kernel" | "state">,
  programIds?: number[],
): Promise<Vanished> {
  const { kernel, state } = ctx;
  const vanished: Vanished = { programs: [], links: [] };
  for (const id of programIds ?? state.programs().map((p) => p.id)) {
    if (!state.program(id)) continue;
    if (!kernel.programAlive(id)) {
      await state.update({ deletePrograms: [id], deleteLinks: state.links(id).map((l) => l.id) });
      vanished.programs.push(id);
      continue;
    }
    const dead = state.links(id).filter((l) => !l.pending && !kernel.attachmentAlive(l));
    if (dead.length === 0) continue;
    await state.update({ deleteLinks: dead.map((l) => l.id) });
    vanished.links.push(...dead);
  }
  return vanished;
}
