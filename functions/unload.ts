/**
 * `unload`: detaches every link of a program, unpins it (the kernel frees it) and removes the map pins
 * no other program still uses.
 *
 * @module
 */
import { z } from "../model/zod.ts";
import { defineFunction } from "./_define.ts";
import { notFound } from "./_errors.ts";
import { ProgramId } from "../model/schemas.ts";
import { detachLink } from "./_hooks.ts";
import { hookKey, programKey } from "./_views.ts";

export const unload = defineFunction({
  name: "unload",
  summary: "Detach a program's links and unload it.",
  input: z.strictObject({ programId: ProgramId }),
  output: z.object({
    programId: ProgramId,
    detachedLinks: z.array(z.int()),
    removedMapPins: z.array(z.string()),
  }),
  async handler({ programId }, ctx) {
    const program = ctx.state.program(programId);
    if (!program) throw notFound("program", programId, { field: "programId" });
    const links = ctx.state.links(programId);
    const keys = [programKey(programId), ...(program.mapOwnerId ? [programKey(program.mapOwnerId)] : [])];
    return await ctx.locks.with([...keys, ...links.map((l) => hookKey(programId, l.attach))], async () => {
      for (const link of links) await detachLink(ctx, link);
      const stillUsed = new Set(
        ctx.state.programs().filter((p) => p.id !== programId).flatMap((p) => Object.values(p.maps)),
      );
      const unused = Object.values(program.maps).filter((path) => !stillUsed.has(path));
      ctx.kernel.unload(programId, unused);
      await ctx.state.update({ deletePrograms: [programId] });
      ctx.log.info("unloaded", { programId, caller: ctx.caller });
      return { programId, detachedLinks: links.map((l) => l.id), removedMapPins: unused };
    });
  },
});
