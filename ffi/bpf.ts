/**
 * The raw bpf() syscall, for what libbpf 1.1.2 cannot express: TCX (mprog) positions and revisions,
 * freplace targets, link updates. Failures throw {@link LibbpfError}, as libbpf's calls do.
 *
 * @example
 * ```ts
 * const { programIds, revision } = mprogQuery(ifindex, BpfAttachType.TCX_INGRESS);
 * ```
 * @module
 */
import { AttrLinkCreate, AttrLinkUpdate, AttrProgQuery, BPF_ATTR_SIZE, BpfCmd } from "./abi.ts";
import { hasErrno, LibbpfError } from "./errno.ts";
import { bpfSyscall } from "./libc.ts";

/** Issues bpf(cmd, attr, size); returns the result (an fd or 0) or throws with errno. */
function sysBpf(op: string, cmd: number, attr: Uint8Array<ArrayBuffer>): number {
  const r = bpfSyscall(cmd, attr);
  if (r < 0) throw new LibbpfError(op, -r);
  return r;
}
/** Where a new program goes on an mprog hook (TCX): before/after a link given by fd, or first/last. */
export interface MprogPosition {
  /** `BpfAttachFlags` bits: BEFORE or AFTER, with LINK when `relativeFd` names a link. */
  flags: number;
  relativeFd?: number;
}

/**
 * `BPF_LINK_CREATE` for a TCX hook at a position, refused with ESTALE if the hook's revision is no longer
 * `expectedRevision` (0: do not check). Returns the link fd.
 */
export function tcxLinkCreate(
  op: string,
  progFd: number,
  ifindex: number,
  attachType: number,
  position: MprogPosition,
  expectedRevision: bigint,
): number {
  const attr = new Uint8Array(BPF_ATTR_SIZE);
  const dv = new DataView(attr.buffer);
  dv.setUint32(AttrLinkCreate.progFd, progFd, true);
  dv.setUint32(AttrLinkCreate.targetFd, ifindex, true);
  dv.setUint32(AttrLinkCreate.attachType, attachType, true);
  dv.setUint32(AttrLinkCreate.flags, position.flags, true);
  dv.setUint32(AttrLinkCreate.tcxRelative, position.relativeFd ?? 0, true);
  dv.setBigUint64(AttrLinkCreate.tcxExpectedRevision, expectedRevision, true);
  return sysBpf(op, BpfCmd.LINK_CREATE, attr);
}

/** An mprog hook's programs and links in run order, and its revision (changes with every attach/detach). */
export interface MprogState {
  revision: bigint;
  programIds: number[];
  /** Link ids in run order; 0 for programs attached without a link. */
  linkIds: number[];
}

/** `BPF_PROG_QUERY` on an mprog hook (TCX ingress/egress of an interface). */
export function mprogQuery(ifindex: number, attachType: number): MprogState {
  for (let room = 16;; room *= 4) {
    const progIds = new Uint32Array(room);
    const linkIds = new Uint32Array(room);
    const attr = new Uint8Array(BPF_ATTR_SIZE);
    const dv = new DataView(attr.buffer);
    const ptr = (a: Uint32Array) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(a)));
    dv.setUint32(AttrProgQuery.targetFd, ifindex, true);
    dv.setUint32(AttrProgQuery.attachType, attachType, true);
    dv.setBigUint64(AttrProgQuery.progIds, ptr(progIds), true);
    dv.setUint32(AttrProgQuery.count, room, true);
    dv.setBigUint64(AttrProgQuery.linkIds, ptr(linkIds), true);
    try {
      sysBpf(`query hook ${attachType} of ifindex ${ifindex}`, BpfCmd.PROG_QUERY, attr);
    } catch (err) {
      if (hasErrno(err, "ENOSPC")) continue;
      throw err;
    }
    const count = dv.getUint32(AttrProgQuery.count, true);
    if (count > room) continue;
    return {
      revision: dv.getBigUint64(AttrProgQuery.revision, true),
      programIds: [...progIds.subarray(0, count)],
      linkIds: [...linkIds.subarray(0, count)],
    };
  }
}

/** Attaches a loaded extension program to function `btfId` of program `targetFd`; returns the link fd. */
export function freplaceAttach(op: string, extFd: number, targetFd: number, btfId: number): number {
  const attr = new Uint8Array(BPF_ATTR_SIZE);
  const dv = new DataView(attr.buffer);
  dv.setUint32(AttrLinkCreate.progFd, extFd, true);
  dv.setUint32(AttrLinkCreate.targetFd, targetFd, true);
  dv.setUint32(AttrLinkCreate.targetBtfId, btfId, true);
  return sysBpf(op, BpfCmd.LINK_CREATE, attr);
}

/** `BPF_LINK_UPDATE`: swaps a link's program; with `oldProgFd`, only if the link still runs that one. */
export function linkUpdate(op: string, linkFd: number, newProgFd: number, oldProgFd?: number): void {
  const attr = new Uint8Array(BPF_ATTR_SIZE);
  const dv = new DataView(attr.buffer);
  dv.setUint32(AttrLinkUpdate.linkFd, linkFd, true);
  dv.setUint32(AttrLinkUpdate.newProgFd, newProgFd, true);
  if (oldProgFd !== undefined) {
    dv.setUint32(AttrLinkUpdate.flags, 1 << 2, true); // BPF_F_REPLACE
    dv.setUint32(AttrLinkUpdate.oldProgFd, oldProgFd, true);
  }
  sysBpf(op, BpfCmd.LINK_UPDATE, attr);
}
