/**
 * `attach`: attaches a loaded program to a hook — an interface (xdp, tc, tcx), a tracepoint, a kernel or
 * user function (kprobe, uprobe), or its fentry/fexit target — and pins the link under bpfd's bpffs.
 *
 * @module
 */
import { z } from "../model/zod.ts";
import { defineFunction } from "./_define.ts";
import { invalid, notFound } from "./_errors.ts";
import { hookContext, isSharedHook } from "./_hooks.ts";
import { ATTACH_TYPES_FOR, AttachSpec, type LinkRecord, ProgramId } from "../model/schemas.ts";
import { hookKey } from "./_views.ts";
import { openForCaller } from "./_files.ts";
import { MAX_TARGET_BYTES } from "../kernel/files.ts";

/** TCX runs the next program only on TC_ACT_UNSPEC: proceed-on is the kernel's there, not a setting. */
export function checkTcxProceedOn(spec: AttachSpec, field = "attach.proceedOn"): void {
  if (spec.type !== "tcx") return;
  const given = [...spec.proceedOn].sort().join(",");
  if (given !== "dispatcher_return,pipe" && given !== "unspec") {
    throw invalid(
      field,
      "TCX decides proceed-on in the kernel: the next program runs only when one returns TC_ACT_UNSPEC (-1); " +
        'leave it at the default or ["unspec"] (type tc chains honour proceed-on in a dispatcher)',
    );
  }
}

export const attach = defineFunction({
  name: "attach",
  summary: "Attach a loaded program to a hook.",
  input: z.strictObject({ programId: ProgramId, attach: AttachSpec }),
  output: z.object({
    linkId: z.int(),
    kernelLinkId: z.optional(z.int()),
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
    checkTcxProceedOn(spec);
    if ((spec.type === "uprobe" || spec.type === "uretprobe") && spec.target.startsWith("/")) {
      // A regular file the caller may read itself, or the same 404 as a missing one (no FIFO, no leak).
      openForCaller(ctx, {
        path: spec.target,
        field: "attach.target",
        what: "target",
        maxBytes: MAX_TARGET_BYTES,
      })
        .close();
    }
    const key = hookKey(programId, spec);
    return await ctx.locks.with([key], async () => {
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
      const moved: LinkRecord[] = [];
      try {
        if (isSharedHook(spec)) {
          // Several programs share the hook: bpfd's others there are placed around it by priority.
          const change = await ctx.kernel.attachToHook(program, pending.id, spec, hookContext(ctx, pending));
          done = { ...pending, ...change.self, pending: undefined };
          for (const [id, attachment] of change.peers) {
            const peer = ctx.state.link(id);
            if (peer) moved.push({ ...peer, ...attachment });
          }
        } else {
          const attachment = await ctx.kernel.attach(programId, pending.id, spec);
          done = { ...pending, ...attachment, pending: undefined };
        }
      } catch (err) {
        await ctx.state.update({ deleteLinks: [pending.id] });
        throw err;
      }
      try {
        await ctx.state.update({ putLinks: [done, ...moved] });
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
