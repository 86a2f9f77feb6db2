/**
 * The raw bpf() syscall, for what libbpf 1.1.2 cannot express: TCX (mprog) positions and revisions,
 * freplace targets, link updates; and what is read often or per fd (programs' run stats, a perf event's
 * program), without libbpf's wrapping. Failures throw {@link LibbpfError}, as libbpf's calls do.
 *
 * @example
 * ```ts
 * const { programIds, revision } = mprogQuery(ifindex, BpfAttachType.TCX_INGRESS);
 * ```
 * @module
 */
import {
  AttrGetFdById,
  AttrLinkCreate,
  AttrLinkUpdate,
  AttrObjInfo,
  AttrProgQuery,
  AttrTaskFdQuery,
  BPF_ATTR_SIZE,
  BPF_FD_TYPE_NAMES,
  BpfCmd,
  ProgInfo,
} from "./abi.ts";
import { hasErrno, LibbpfError } from "./errno.ts";
import { bpfSyscall, closeFd } from "./libc.ts";

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

/** What changes while a program stays loaded (its run stats), with its load time (ns since boot). */
export interface ProgramRunStats {
  loadTimeNs: number;
  runTimeNs: number;
  runCount: number;
}

const idAttr = new Uint8Array(AttrGetFdById.size);
const idView = new DataView(idAttr.buffer);
const infoAttr = new Uint8Array(AttrObjInfo.size);
const infoView = new DataView(infoAttr.buffer);
const statsInfo = new Uint8Array(ProgInfo.runCnt + 8); // the prefix of bpf_prog_info up to run_cnt
const statsWords = new Uint32Array(statsInfo.buffer);
infoView.setBigUint64(
  AttrObjInfo.info,
  BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(statsInfo))),
  true,
);

/** A u64 of `statsInfo` at byte `offset`, as a number. */
const u64 = (offset: number) => statsWords[offset / 4] + statsWords[offset / 4 + 1] * 2 ** 32;

/**
 * Program `id`'s load time and run stats, or undefined once it is gone: one open by id, one info call of
 * the info's prefix (no map ids), one close, into buffers kept for it.
 */
export function programRunStats(id: number): ProgramRunStats | undefined {
  idView.setUint32(AttrGetFdById.id, id, true);
  const fd = bpfSyscall(BpfCmd.PROG_GET_FD_BY_ID, idAttr);
  if (fd < 0) return undefined;
  try {
    statsInfo.fill(0);
    infoView.setUint32(AttrObjInfo.bpfFd, fd, true);
    infoView.setUint32(AttrObjInfo.infoLen, statsInfo.length, true);
    if (bpfSyscall(BpfCmd.OBJ_GET_INFO_BY_FD, infoAttr) < 0) return undefined;
    return {
      loadTimeNs: u64(ProgInfo.loadTime),
      runTimeNs: u64(ProgInfo.runTimeNs),
      runCount: u64(ProgInfo.runCnt),
    };
  } finally {
    closeFd(fd);
  }
}

/** What a process's perf event (or raw tracepoint) fd runs, from BPF_TASK_FD_QUERY. */
export interface TaskFdProgram {
  programId: number;
  /** tracepoint, kprobe, kretprobe, uprobe, uretprobe or raw_tracepoint. */
  fdType: string;
  /** The tracepoint, probed function or probed file. */
  target: string;
  /** The probe's offset (in the file, or from the function). */
  offset: number;
}

/**
 * `BPF_TASK_FD_QUERY` for fd `fd` of process `pid`, as `bpftool perf` asks: the program attached to that
 * perf event, or undefined when none is (or the fd is gone, or is not one).
 */
export function taskFdQuery(pid: number, fd: number): TaskFdProgram | undefined {
  const attr = new Uint8Array(AttrTaskFdQuery.size);
  const name = new Uint8Array(256);
  const dv = new DataView(attr.buffer);
  dv.setUint32(AttrTaskFdQuery.pid, pid, true);
  dv.setUint32(AttrTaskFdQuery.fd, fd, true);
  dv.setUint32(AttrTaskFdQuery.bufLen, name.length, true);
  dv.setBigUint64(AttrTaskFdQuery.buf, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(name))), true);
  if (bpfSyscall(BpfCmd.TASK_FD_QUERY, attr) < 0) return undefined;
  const len = Math.min(dv.getUint32(AttrTaskFdQuery.bufLen, true), name.length);
  const nul = name.subarray(0, len).indexOf(0);
  return {
    programId: dv.getUint32(AttrTaskFdQuery.progId, true),
    fdType: BPF_FD_TYPE_NAMES[dv.getUint32(AttrTaskFdQuery.fdType, true)] ?? "unknown",
    target: new TextDecoder().decode(name.subarray(0, nul < 0 ? len : nul)),
    offset: Number(dv.getBigUint64(AttrTaskFdQuery.probeOffset, true)),
  };
}
