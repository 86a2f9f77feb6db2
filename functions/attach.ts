/**
 * `attach`: attaches a loaded program to a hook — an interface (xdp, tc, tcx), a tracepoint, a kernel or
 * user function (kprobe, uprobe), or its fentry/fexit target — and pins the link under bpfd's bpffs.
 *
 * @module
 */
import { z } from "zod";
import { defineFunction } from "./_define.ts";
import { conflict, invalid, notFound } from "./_errors.ts";
import { ATTACH_TYPES_FOR, AttachSpec, type LinkRecord, ProgramId } from "./_schemas.ts";
import { hookKey } from "./_views.ts";

export const attach = defineFunction({
  name: "attach",
  summary: "Attach a loaded program to a hook.",
  input: z.object({ programId: ProgramId, attach: AttachSpec }).strict(),
  output: z.object({
    linkId: z.number().int(),
    kernelLinkId: z.number().int().optional(),
    programId: ProgramId,
    attach: AttachSpec,
  }),
  async handler({ programId, attach: spec }, ctx) {
    const program = ctx.state.program(programId);
    if (!program) throw notFound("program", programId, { field: "programId" });
    if (!ATTACH_TYPES_FOR[program.type].includes(spec.type)) {
      throw invalid(
        "attach.type",
        `program ${programId} is a ${program.type} program; it attaches as ${
          ATTACH_TYPES_FOR[program.type].join(" or ")
        }`,
      );
    }
    const key = hookKey(programId, spec);
    return await ctx.locks.with([key], async () => {
      if (spec.type === "xdp") {
        const other = ctx.state.links().find((l) => hookKey(l.programId, l.attach) === key);
        if (other) {
          throw conflict(
            `${spec.iface} already has bpfd's XDP program ${other.programId} (link ${other.id}); several XDP programs on one interface need a dispatcher`,
            { linkId: other.id, programId: other.programId },
          );
        }
      }
      const pending: LinkRecord = {
        id: ctx.state.allocateLinkId(),
        programId,
        attach: spec,
        createdAt: new Date().toISOString(),
        createdBy: ctx.caller,
        pending: true,
      };
      await ctx.state.update({ putLinks: [pending] });
      let done: LinkRecord;
      try {
        const attachment = await ctx.kernel.attach(programId, pending.id, spec);
        done = { ...pending, ...attachment, pending: undefined };
      } catch (err) {
        await ctx.state.update({ deleteLinks: [pending.id] });
        throw err;
      }
      try {
        await ctx.state.update({ putLinks: [done] });
      } catch (err) {
        await ctx.kernel.detach(done);
        await ctx.state.update({ deleteLinks: [pending.id] }).catch(() => {});
        throw err;
      }
      ctx.log.info("attached", {
        programId,
        linkId: done.id,
        kernelLinkId: done.kernelLinkId,
        hook: key,
        caller: ctx.caller,
      });
      return { linkId: done.id, kernelLinkId: done.kernelLinkId, programId, attach: spec };
    });
  },
});
