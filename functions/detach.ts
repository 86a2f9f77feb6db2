/**
 * `detach`: removes one attachment; the program stays loaded.
 *
 * @module
 */
import { PositiveInt, z } from "../model/zod.ts";
import type { Ctx } from "./_ctx.ts";
import { defineFunction } from "./_define.ts";
import { notFound } from "./_errors.ts";
import { type LinkRecord, ProgramId } from "../model/schemas.ts";
import { hookKey } from "./_views.ts";
import { hookContext } from "./_hooks.ts";

export const detach = defineFunction({
  name: "detach",
  summary: "Detach one link; the program stays loaded.",
  input: z.strictObject({ linkId: PositiveInt }),
  output: z.object({ linkId: z.int(), programId: ProgramId }),
  async handler({ linkId }, ctx) {
    const link = ctx.state.link(linkId);
    if (!link) throw notFound("link", linkId, { field: "linkId" });
    await ctx.locks.with([hookKey(link.programId, link.attach)], () => detachLink(ctx, link));
    return { linkId, programId: link.programId };
  },
});

/**
 * Detaches `link` and forgets it; the caller holds the hook's lock. A clsact qdisc bpfd created stays
 * while bpfd has other tc filters on the interface (they inherit the duty to remove it) and goes with
 * the last one, unless someone else's filters are on it.
 */
export async function detachLink(ctx: Ctx, link: LinkRecord): Promise<void> {
  const others = ctx.state.links().filter((l) =>
    l.id !== link.id && l.attach.type === "tc" && link.attach.type === "tc" && l.ifindex === link.ifindex &&
    l.attach.netns === link.attach.netns
  );
  const moved: LinkRecord[] = [];
  const hook = hookContext(ctx, link);
  if (link.attach.type === "xdp" || (link.attach.type === "tc" && hook.peers.length > 0)) {
    // The others on the hook stay, in order: a new dispatcher without it, or the last one direct.
    for (const [id, attachment] of await ctx.kernel.detachFromHook(link, hook, others.length === 0)) {
      const peer = ctx.state.link(id);
      if (peer) moved.push({ ...peer, ...attachment });
    }
  } else {
    await ctx.kernel.detach(link, others.length === 0);
  }
  const heir = link.tc?.qdiscCreated && others[0]?.tc
    ? [{ ...others[0], tc: { ...others[0].tc, qdiscCreated: true } }]
    : [];
  await ctx.state.update({ deleteLinks: [link.id], putLinks: [...heir, ...moved] });
  ctx.log.info("detached", { linkId: link.id, programId: link.programId, caller: ctx.caller });
}
