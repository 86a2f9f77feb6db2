/**
 * tc (cls_bpf filters on a clsact qdisc) and XDP attachments over netlink, through libbpf: what libxdp
 * uses, so that several managers can share an interface.
 *
 * @example
 * ```ts
 * const { programId, mode } = xdpQuery(ifindex);
 * ```
 * @module
 */
import { BPF_TC_F_REPLACE, TcHook, TcOpts, XdpAttached, XdpAttachOpts, XdpQueryOpts } from "./abi.ts";
import { LibbpfError } from "./errno.ts";
import { check, lib, withLog } from "./libbpf.ts";

function tcHook(ifindex: number, attachPoint: number): Uint8Array {
  const hook = new Uint8Array(TcHook.size);
  const dv = new DataView(hook.buffer);
  dv.setBigUint64(0, BigInt(TcHook.size), true);
  dv.setInt32(TcHook.ifindex, ifindex, true);
  dv.setUint32(TcHook.attachPoint, attachPoint, true);
  return hook;
}

function tcOpts(fields: { progFd?: number; handle?: number; priority?: number }): Uint8Array {
  const opts = new Uint8Array(TcOpts.size);
  const dv = new DataView(opts.buffer);
  dv.setBigUint64(0, BigInt(TcOpts.size), true);
  dv.setInt32(TcOpts.progFd, fields.progFd ?? 0, true);
  dv.setUint32(TcOpts.handle, fields.handle ?? 0, true);
  dv.setUint32(TcOpts.priority, fields.priority ?? 0, true);
  return opts;
}

/** Creates the clsact qdisc; returns false when one already exists (someone else's, or ours). */
export function tcHookCreate(ifindex: number, attachPoint: number): boolean {
  const r = withLog(() => lib.bpf_tc_hook_create(tcHook(ifindex, attachPoint))).value;
  if (r === -17) return false;
  if (r < 0) throw new LibbpfError(`create clsact qdisc on ifindex ${ifindex}`, -r);
  return true;
}

/** Removes the clsact qdisc with every filter on it. Only for qdiscs bpfd created. */
export function tcHookDestroy(ifindex: number, attachPoint: number): void {
  check(
    `remove clsact qdisc on ifindex ${ifindex}`,
    () => lib.bpf_tc_hook_destroy(tcHook(ifindex, attachPoint)),
  );
}

/**
 * Adds a cls_bpf filter (direct-action) with this handle and priority. With `replace`, swaps the program
 * of the existing filter with that handle and priority in one step (cls_bpf replaces it under RCU).
 */
export function tcAttach(
  ifindex: number,
  attachPoint: number,
  progFd: number,
  handle: number,
  priority: number,
  replace = false,
): { handle: number; priority: number } {
  const opts = tcOpts({ progFd, handle, priority });
  if (replace) new DataView(opts.buffer).setUint32(TcOpts.flags, BPF_TC_F_REPLACE, true);
  check(
    `attach tc filter on ifindex ${ifindex}`,
    () => lib.bpf_tc_attach(tcHook(ifindex, attachPoint), opts),
  );
  const dv = new DataView(opts.buffer);
  return { handle: dv.getUint32(TcOpts.handle, true), priority: dv.getUint32(TcOpts.priority, true) };
}

/** Removes the filter with this handle and priority (a fresh opts: prog_fd/prog_id/flags zero). */
export function tcDetach(ifindex: number, attachPoint: number, handle: number, priority: number): void {
  check(
    `detach tc filter ${handle}/${priority} on ifindex ${ifindex}`,
    () => lib.bpf_tc_detach(tcHook(ifindex, attachPoint), tcOpts({ handle, priority })),
  );
}

/** The program id of the filter with this handle and priority, or undefined if there is none. */
export function tcQuery(
  ifindex: number,
  attachPoint: number,
  handle: number,
  priority: number,
): number | undefined {
  const opts = tcOpts({ handle, priority });
  const r = withLog(() => lib.bpf_tc_query(tcHook(ifindex, attachPoint), opts)).value;
  if (r === -2 || r === -19 || r === -22) return undefined;
  if (r < 0) throw new LibbpfError(`query tc filter on ifindex ${ifindex}`, -r);
  return new DataView(opts.buffer).getUint32(TcOpts.progId, true);
}

// XDP over netlink

/**
 * Attaches `progFd` (-1: detaches) as the interface's XDP program. With `oldProgFd`, replaces only if
 * that program is still the one attached (EEXIST otherwise); without, refuses when any is attached.
 */
export function xdpAttach(
  op: string,
  ifindex: number,
  progFd: number,
  flags: number,
  oldProgFd?: number,
): void {
  const opts = new Uint8Array(XdpAttachOpts.size);
  const dv = new DataView(opts.buffer);
  dv.setBigUint64(0, BigInt(XdpAttachOpts.size), true);
  dv.setInt32(XdpAttachOpts.oldProgFd, oldProgFd ?? 0, true);
  check(op, () => lib.bpf_xdp_attach(ifindex, progFd, flags, opts));
}

/** The XDP program attached to an interface (driver or generic mode), if any. */
export function xdpQuery(ifindex: number): { programId: number; mode?: "native" | "skb" | "hw" } {
  const opts = new Uint8Array(XdpQueryOpts.size);
  const dv = new DataView(opts.buffer);
  dv.setBigUint64(0, BigInt(XdpQueryOpts.size), true);
  check(`query XDP on ifindex ${ifindex}`, () => lib.bpf_xdp_query(ifindex, 0, opts));
  const drv = dv.getUint32(XdpQueryOpts.drvProgId, true);
  const skb = dv.getUint32(XdpQueryOpts.skbProgId, true);
  const hw = dv.getUint32(XdpQueryOpts.hwProgId, true);
  const mode = dv.getUint8(XdpQueryOpts.attachMode);
  if (mode === XdpAttached.NONE) return { programId: 0 };
  if (drv) return { programId: drv, mode: "native" };
  if (skb) return { programId: skb, mode: "skb" };
  return { programId: hw, mode: "hw" };
}
