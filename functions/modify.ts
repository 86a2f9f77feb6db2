/**
 * `modify`: changes an attached program's priority or proceed-on in place, without reloading it: the
 * program keeps its id and its maps (and their contents). On a shared hook the chain is rebuilt around
 * it and swapped in atomically (XDP: a new dispatcher, the same extension programs; TCX: the link moves
 * to its new place, the program stays loaded).
 *
 * @example
 * ```sh
 * deno task invoke modify '{"linkId": 3, "priority": 10, "proceedOn": ["pass", "drop"]}'
 * ```
 * @module
 */
import { PositiveInt, z } from "../model/zod.ts";
import { defineFunction } from "./_define.ts";
import { fromZod, invalid, notFound } from "./_errors.ts";
import { checkTcxProceedOn, hookContext, isSharedHook, movedPeers } from "./_hooks.ts";
import { AttachSpec, type LinkRecord, Priority, ProgramId } from "../model/schemas.ts";
import { hookKey } from "./_views.ts";
import { enforceAttach } from "./_policy.ts";

export const modify = defineFunction({
  name: "modify",
  summary: "Change an attached program's priority or proceed-on in place (no reload).",
  input: z.strictObject({
    linkId: PositiveInt,
    priority: z.optional(Priority),
    /** XDP: aborted, drop, pass, tx, redirect, dispatcher_return; tc: unspec, ok, ..., dispatcher_return. */
    proceedOn: z.optional(
      z.array(z.string().check(z.minLength(1), z.maxLength(32))).check(z.minLength(1), z.maxLength(16)),
    ),
  }).check(z.refine((v) => v.priority !== undefined || v.proceedOn !== undefined, {
    message: "give priority, proceedOn or both",
    path: ["priority"],
  })),
  output: z.object({
    linkId: z.int(),
    programId: ProgramId,
    attach: AttachSpec,
    kernelLinkId: z.optional(z.int()),
    slotProgramId: z.optional(ProgramId),
  }),
  fields: { interface: "attach.iface", netns: "attach.netns" },
  async handler({ linkId, priority, proceedOn }, ctx) {
    const link = ctx.state.link(linkId);
    if (!link) throw notFound("link", linkId, { field: "linkId" });
    if (!isSharedHook(link.attach)) {
      throw invalid(
        "linkId",
        `link ${linkId} is a ${link.attach.type} attachment; priority and proceed-on belong to xdp, tc and tcx hooks`,
      );
    }
    const parsed = AttachSpec.safeParse({
      ...link.attach,
      ...(priority !== undefined ? { priority } : {}),
      ...(proceedOn !== undefined ? { proceedOn } : {}),
    });
    if (!parsed.success) {
      const err = fromZod(parsed.error);
      throw invalid(String(err.details.field ?? "proceedOn").replace(/^attach\./, ""), err.message);
    }
    const spec = parsed.data;
    if (!isSharedHook(spec)) throw invalid("linkId", `link ${linkId} is not on a network hook`);
    checkTcxProceedOn(spec, "proceedOn");
    return await ctx.locks.with([hookKey(link.programId, link.attach)], async () => {
      const current = ctx.state.link(linkId);
      if (!current) throw notFound("link", linkId, { field: "linkId" });
      const program = ctx.state.program(current.programId);
      if (!program) throw notFound("program", current.programId, { field: "linkId" });
      const before = current.attach;
      const unchanged = isSharedHook(before) && before.priority === spec.priority &&
        JSON.stringify(before.proceedOn) === JSON.stringify(spec.proceedOn);
      if (unchanged) {
        return {
          linkId,
          programId: current.programId,
          attach: current.attach,
          kernelLinkId: current.kernelLinkId,
          slotProgramId: current.slotProgramId,
        };
      }
      enforceAttach(ctx, program, spec);
      const changed = { ...current, attach: spec };
      const change = await ctx.kernel.rechain(changed, program, hookContext(ctx, changed));
      const done: LinkRecord = { ...changed, ...change.self };
      await ctx.state.update({ putLinks: [done, ...movedPeers(ctx, change.peers)] });
      ctx.log.info("modified", {
        linkId,
        programId: done.programId,
        priority,
        proceedOn,
        caller: ctx.caller,
      });
      return {
        linkId,
        programId: done.programId,
        attach: done.attach,
        kernelLinkId: done.kernelLinkId,
        slotProgramId: done.slotProgramId,
      };
    });
  },
});
