/**
 * `list`: the programs bpfd manages, with their links; with `all`, every program in the kernel (the
 * same set `bpftool prog list` shows), the ones bpfd did not load with where the kernel says they are
 * attached and the processes holding them.
 *
 * @module
 */
import { z } from "../model/zod.ts";
import { defineFunction } from "./_define.ts";
import { HookChainView, Metadata, ProgramType, ProgramView } from "../model/schemas.ts";
import { hookKey, kernelInfo, managedViews } from "./_views.ts";
import { hookMembers, isSharedHook } from "./_hooks.ts";
import type { Ctx } from "./_ctx.ts";
import { CGROUP_PROGRAM_TYPES } from "../kernel/attachments.ts";

/** Every network hook bpfd has programs on (of `type`, if given), with its whole chain in run order. */
function hookChains(ctx: Ctx, type?: string): HookChainView[] {
  const seen = new Map<string, HookChainView>();
  for (const link of ctx.state.links()) {
    if (link.pending || !isSharedHook(link.attach) || (type && link.attach.type !== type)) continue;
    const key = `${link.attach.type}|${hookKey(link.programId, link.attach)}`;
    if (seen.has(key)) continue;
    seen.set(key, ctx.kernel.hookChain(link.attach, hookMembers(ctx, link.attach, link.programId)));
  }
  return [...seen.values()];
}

/** The kernel's type names that each bpfd type loads as, to filter unmanaged programs by type. */
const KERNEL_TYPE: Record<z.infer<typeof ProgramType>, string> = {
  xdp: "xdp",
  tc: "sched_cls",
  tcx: "sched_cls",
  tracepoint: "tracepoint",
  kprobe: "kprobe",
  kretprobe: "kprobe",
  uprobe: "kprobe",
  uretprobe: "kprobe",
  fentry: "tracing",
  fexit: "tracing",
  raw_tracepoint: "raw_tracepoint",
  tp_btf: "tracing",
  perf_event: "perf_event",
};

/** The programs of running trace sessions (of kernel type `type`'s, if given), each with its session. */
function sessionPrograms(ctx: Ctx, type?: ProgramType): ProgramView[] {
  return (ctx.traces?.sessions() ?? []).flatMap(({ id, startedBy, startedAt, expiresAt, programIds }) =>
    programIds.flatMap((programId) => {
      const kernel = kernelInfo(ctx, programId);
      if (!kernel || (type && kernel.type !== KERNEL_TYPE[type])) return [];
      return [{
        id: programId,
        managed: false,
        kernel,
        links: [],
        session: { id, startedBy, startedAt, expiresAt },
      }];
    })
  );
}

/** Sets where each of `views` (programs bpfd does not manage) is attached and, with `holders`, who holds it. */
async function describeOthers(ctx: Ctx, views: ProgramView[], holders: boolean): Promise<void> {
  if (views.length === 0) return;
  const cgroupPrograms = views.filter((v) => v.kernel && CGROUP_PROGRAM_TYPES.has(v.kernel.type))
    .map((v) => v.id);
  const attachments = ctx.kernel.attachments({
    cgroupPrograms,
    onTcCapped: (iface, skipped) =>
      ctx.log.warn("tc filters not read: too many qdiscs and classes", { iface, skipped }),
  });
  const held = holders ? await ctx.kernel.holders() : undefined;
  for (const v of views) {
    v.attachments = [...attachments.get(v.id) ?? [], ...held?.perfEvents.get(v.id) ?? []];
    const h = held?.holders.get(v.id);
    if (h) v.holders = h;
  }
}

export const list = defineFunction({
  name: "list",
  summary: "List managed programs and trace sessions' programs; with all, every program in the kernel.",
  input: z.strictObject({
    all: z._default(z.boolean(), false),
    /** With `all`: read the processes holding the programs bpfd does not manage (a /proc scan). */
    holders: z._default(z.boolean(), true),
    type: z.optional(ProgramType),
    metadata: z.optional(Metadata),
  }),
  output: z.object({
    programs: z.array(ProgramView),
    /** The network hooks bpfd has programs on, each with what runs there in order. */
    hooks: z._default(z.array(HookChainView), []),
  }),
  checkOutput: false, // up to thousands of views; tests/host/node/list_test.ts validates them
  async handler({ all, holders, type, metadata }, ctx) {
    const managed = managedViews(
      ctx,
      ctx.state.programs()
        .filter((p) => !type || p.type === type)
        .filter((p) => !metadata || Object.entries(metadata).every(([k, v]) => p.metadata[k] === v)),
    );
    const hooks = hookChains(ctx, type);
    const traced = sessionPrograms(ctx, type);
    if (metadata) return { programs: managed, hooks };
    if (!all) return { programs: [...managed, ...traced].sort((a, b) => a.id - b.id), hooks };
    const known = new Set([...managed, ...traced].map((p) => p.id));
    const unmanaged = ctx.kernel.allPrograms()
      .filter((info) => !known.has(info.id) && !ctx.state.program(info.id))
      .filter((info) => !type || info.type === KERNEL_TYPE[type])
      .map(({ typeId: _typeId, ...kernel }): ProgramView => ({
        id: kernel.id,
        managed: false,
        kernel,
        links: [],
      }));
    await describeOthers(ctx, [...traced, ...unmanaged], holders);
    const programs = [...managed, ...traced, ...unmanaged].sort((a, b) => a.id - b.id);
    return { programs, hooks };
  },
});
