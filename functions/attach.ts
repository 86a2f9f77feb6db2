/**
 * `attach`: attaches a loaded program to a hook — an interface (xdp, tc, tcx), a tracepoint, a kernel or
 * user function (kprobe, uprobe), or its fentry/fexit target — and pins the link under bpfd's bpffs.
 *
 * @module
 */
import { z } from "../model/zod.ts";
import { defineFunction } from "./_define.ts";
import { invalid, notFound } from "./_errors.ts";
import { checkTcxProceedOn, hookContext, isSharedHook, movedPeers } from "./_hooks.ts";
import { ATTACH_TYPES_FOR, AttachSpec, type LinkRecord, ProgramId } from "../model/schemas.ts";
import { hookKey } from "./_views.ts";
import { openForCaller } from "./_files.ts";
import { MAX_TARGET_BYTES } from "../kernel/files.ts";
import { enforceAttach } from "./_policy.ts";

/** Where the kernel's objects sit in attach's input. */
const ATTACH_FIELDS = {
  interface: "attach.iface",
  netns: "attach.netns",
  tracepoint: "attach.tracepoint",
  function: "attach.fnName",
  target: "attach.target",
  process: "attach.pid",
};

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
  fields: ATTACH_FIELDS,
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
    enforceAttach(ctx, program, spec);
    const key = hookKey(programId, spec);
    return await ctx.locks.with([key], async () => {
      const netnsId = ctx.kernel.netnsOf(spec); // checked at every later use (a reused pid's namespace is not it)
      const pending: LinkRecord = {
        id: ctx.state.allocateLinkId(),
        programId,
        attach: spec,
        ...(netnsId ? { netnsId } : {}),
        createdAt: new Date().toISOString(),
        createdBy: ctx.caller,
        pending: true,
      };
      await ctx.state.update({ putLinks: [pending] });
      let done: LinkRecord;
      let moved: LinkRecord[] = [];
      try {
        if (isSharedHook(spec)) {
          // Several programs share the hook: bpfd's others there are placed around it by priority.
          const change = await ctx.kernel.attachToHook(
            { ...pending, attach: spec },
            program,
            hookContext(ctx, pending),
          );
          done = { ...pending, ...change.self, pending: undefined };
          moved = movedPeers(ctx, change.peers);
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
        await ctx.kernel.detach(done, { hook: hookContext(ctx, done) });
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
