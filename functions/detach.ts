/**
 * `detach`: removes one attachment; the program stays loaded.
 *
 * @module
 */
import { PositiveInt, z } from "../model/zod.ts";
import { defineFunction } from "./_define.ts";
import { notFound } from "./_errors.ts";
import { ProgramId } from "../model/schemas.ts";
import { hookKey } from "./_views.ts";
import { detachLink } from "./_hooks.ts";

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
