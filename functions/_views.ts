/**
 * Helpers the functions share: how a program is shown, which hook a link occupies.
 *
 * @module
 */
import type { Ctx } from "./_ctx.ts";
import type { AttachSpec, KernelProgramInfo, ProgramRecord, ProgramView } from "../model/schemas.ts";

/** A managed program as `get`/`list` show it: bpfd's record, its links and the kernel's view. */
export function managedView(ctx: Ctx, record: ProgramRecord): ProgramView {
  return {
    id: record.id,
    managed: true,
    kernel: kernelInfo(ctx, record.id),
    program: record,
    links: ctx.state.links(record.id),
  };
}

/** What the kernel says about program `id` (undefined once it is gone). */
export function kernelInfo(ctx: Ctx, id: number): KernelProgramInfo | undefined {
  const info = ctx.kernel.programInfo(id);
  if (!info) return undefined;
  const { typeId: _typeId, ...shown } = info;
  return shown;
}

/**
 * The lock key of the hook an attachment occupies: network hooks per namespace, interface and
 * direction; everything else per program (such attachments do not share a hook with anyone).
 */
export function hookKey(programId: number, attach: AttachSpec): string {
  switch (attach.type) {
    case "xdp":
      return `xdp:${attach.netns ?? ""}:${attach.iface}`;
    case "tc":
    case "tcx":
      return `tc:${attach.netns ?? ""}:${attach.iface}:${attach.direction}`;
    default:
      return `program:${programId}`;
  }
}

/** The lock key of a program itself (load with map sharing, unload). */
export const programKey = (id: number): string => `program:${id}`;
