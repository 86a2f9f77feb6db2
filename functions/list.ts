/**
 * `list`: the programs bpfd manages, with their links; with `all`, every program in the kernel (the
 * same set `bpftool prog list` shows), the ones bpfd did not load with the kernel's information only.
 *
 * @module
 */
import { z } from "../model/zod.ts";
import { defineFunction } from "./_define.ts";
import { HookChainView, Metadata, ProgramType, ProgramView } from "../model/schemas.ts";
import { hookKey, kernelInfo, managedView } from "./_views.ts";
import { hookMembers, isSharedHook } from "./_hooks.ts";
import type { Ctx } from "./_ctx.ts";

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

export const list = defineFunction({
  name: "list",
  summary: "List managed programs and trace sessions' programs; with all, every program in the kernel.",
  input: z.strictObject({
    all: z._default(z.boolean(), false),
    type: z.optional(ProgramType),
    metadata: z.optional(Metadata),
  }),
  output: z.object({
    programs: z.array(ProgramView),
    /** The network hooks bpfd has programs on, each with what runs there in order. */
    hooks: z._default(z.array(HookChainView), []),
  }),
  checkOutput: false, // up to thousands of views; tests/host/node/list_test.ts validates them
  handler({ all, type, metadata }, ctx) {
    const managed = ctx.state.programs()
      .filter((p) => !type || p.type === type)
      .filter((p) => !metadata || Object.entries(metadata).every(([k, v]) => p.metadata[k] === v))
      .map((p) => managedView(ctx, p));
    const hooks = hookChains(ctx, type);
    const traced = sessionPrograms(ctx, type);
    if (metadata) return Promise.resolve({ programs: managed, hooks });
    if (!all) {
      return Promise.resolve({ programs: [...managed, ...traced].sort((a, b) => a.id - b.id), hooks });
    }
    const known = new Set([...managed, ...traced].map((p) => p.id));
    const unmanaged = ctx.kernel.allPrograms()
      .filter((info) => !known.has(info.id) && !ctx.state.program(info.id))
      .filter((info) => !type || info.type === KERNEL_TYPE[type])
      .map((info) => ({ id: info.id, managed: false, kernel: kernelInfo(ctx, info.id) ?? info, links: [] }));
    const programs = [...managed, ...traced, ...unmanaged].sort((a, b) => a.id - b.id);
    return Promise.resolve({ programs, hooks });
  },
});
