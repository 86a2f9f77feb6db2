/**
 * Helpers the functions share: how a program is shown (global data values only to callers who may load),
 * which hook a link occupies.
 *
 * @module
 */
import type { Ctx } from "./_ctx.ts";
import type {
  AttachSpec,
  Identity,
  KernelProgramInfo,
  ProgramRecord,
  ProgramView,
} from "../model/schemas.ts";

/**
 * A managed program as `get`/`list` show it: bpfd's record, its links and the kernel's view. Global data
 * values only for a caller who may load (see {@link mayLoad}; `loaded`: the caller just loaded it); names and
 * sizes for everyone.
 */
export function managedView(ctx: Ctx, record: ProgramRecord, opts: { loaded?: boolean } = {}): ProgramView {
  return view(ctx, record, kernelInfo(ctx, record.id), opts.loaded);
}

/** {@link managedView} of many records, the kernel read for all of them at once (`list`). */
export function managedViews(ctx: Ctx, records: ProgramRecord[]): ProgramView[] {
  const infos = ctx.kernel.programInfos(records.map((r) => r.id));
  return records.map((r) => view(ctx, r, shown(infos.get(r.id))));
}

function view(
  ctx: Ctx,
  record: ProgramRecord,
  kernel: KernelProgramInfo | undefined,
  loaded = false,
): ProgramView {
  const entries = Object.entries(record.globalData);
  return {
    id: record.id,
    managed: true,
    kernel,
    program: loaded || mayLoad(ctx.caller) ? record : { ...record, globalData: {} },
    ...(entries.length ? { globalData: Object.fromEntries(entries.map(([n, v]) => [n, summary(v)])) } : {}),
    links: ctx.state.links(record.id),
  };
}

/**
 * Whether `caller` may load programs: in-process and unix socket callers (the socket admits only root
 * and the API group), and TCP readers whose authorization includes loading (`mayLoad`).
 */
export function mayLoad(caller: Identity): boolean {
  return caller.via === "in-process" || caller.via === "unix-socket" || caller.mayLoad === true;
}

/** A value's size; no hash of it: a small value (most are 4 or 8 bytes) is found from its hash at once. */
function summary(base64: string): { bytes: number } {
  return { bytes: atob(base64).length };
}

/** What the kernel says about program `id` (undefined once it is gone). */
export function kernelInfo(ctx: Ctx, id: number): KernelProgramInfo | undefined {
  return shown(ctx.kernel.programInfo(id));
}

/** The kernel's info as the API shows it (without the numeric type). */
function shown(info: ReturnType<Ctx["kernel"]["programInfo"]>): KernelProgramInfo | undefined {
  if (!info) return undefined;
  const { typeId: _typeId, ...rest } = info;
  return rest;
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
