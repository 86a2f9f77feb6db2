/**
 * Kernel and libbpf ABI for x86-64: constants, struct sizes and field offsets, errno names. Nothing
 * outside ffi/ computes an offset; the layouts were read from libbpf 1.1.2's headers and the kernel's
 * UAPI (tests/unit/ffi/abi_test.ts compiles a C program with `offsetof` and compares).
 *
 * @module
 */

/** `enum bpf_prog_type` values bpfd uses. */
export const BpfProgType = {
  KPROBE: 2,
  SCHED_CLS: 3,
  TRACEPOINT: 5,
  XDP: 6,
  PERF_EVENT: 7,
  RAW_TRACEPOINT: 17,
  TRACING: 26,
  EXT: 28,
} as const;

/** Every `enum bpf_prog_type` name, by value, as `bpftool prog list` prints them. */
export const PROG_TYPE_NAMES = [
  "unspec",
  "socket_filter",
  "kprobe",
  "sched_cls",
  "sched_act",
  "tracepoint",
  "xdp",
  "perf_event",
  "cgroup_skb",
  "cgroup_sock",
  "lwt_in",
  "lwt_out",
  "lwt_xmit",
  "sock_ops",
  "sk_skb",
  "cgroup_device",
  "sk_msg",
  "raw_tracepoint",
  "cgroup_sock_addr",
  "lwt_seg6local",
  "lirc_mode2",
  "sk_reuseport",
  "flow_dissector",
  "cgroup_sysctl",
  "raw_tracepoint_writable",
  "cgroup_sockopt",
  "tracing",
  "struct_ops",
  "ext",
  "lsm",
  "sk_lookup",
  "syscall",
  "netfilter",
] as const;

/** `enum bpf_attach_type` values bpfd uses (TCX ones are newer than the 6.1 UAPI headers). */
export const BpfAttachType = {
  TRACE_RAW_TP: 23,
  TRACE_FENTRY: 24,
  TRACE_FEXIT: 25,
  XDP: 37,
  PERF_EVENT: 41,
  TCX_INGRESS: 46,
  TCX_EGRESS: 47,
} as const;

/** `enum bpf_link_type` names by value, as bpftool prints them. */
export const LINK_TYPE_NAMES = [
  "unspec",
  "raw_tracepoint",
  "tracing",
  "cgroup",
  "iter",
  "netns",
  "xdp",
  "perf_event",
  "kprobe_multi",
  "struct_ops",
  "netfilter",
  "tcx",
  "uprobe_multi",
  "netkit",
  "sockmap",
] as const;

/** XDP attach flags (`XDP_FLAGS_*`): UPDATE_IF_NOEXIST refuses to replace, REPLACE checks the old program. */
export const XdpFlags = {
  UPDATE_IF_NOEXIST: 1 << 0,
  SKB_MODE: 1 << 1,
  DRV_MODE: 1 << 2,
  HW_MODE: 1 << 3,
  REPLACE: 1 << 4,
} as const;

/** `enum xdp_action`, as XDP programs return them. */
export const XdpActionValue = { aborted: 0, drop: 1, pass: 2, tx: 3, redirect: 4 } as const;

/** tc actions (`TC_ACT_*`), as cls_bpf/TCX programs return them. TCX runs the next program only on -1. */
export const TcActionValue = {
  unspec: -1,
  ok: 0,
  reclassify: 1,
  shot: 2,
  pipe: 3,
  stolen: 4,
  queued: 5,
  repeat: 6,
  redirect: 7,
  trap: 8,
} as const;

/**
 * libxdp's multi-prog dispatcher protocol, version 2 (also bpfd's tc dispatcher): the rodata config
 * `struct xdp_dispatcher_config { u8 magic, dispatcher_version, num_progs_enabled, is_xdp_frags;
 * u32 chain_call_actions[10], run_prios[10], program_flags[10]; }` (124 bytes). An empty slot returns
 * XDP 31 / TC 30 ("dispatcher_return"); the chain goes on after slot i when bit `1 << ret` (TC:
 * `1 << (ret + 1)`) is set in chain_call_actions[i].
 */
export const DispatcherConfig = {
  size: 124,
  magic: 0,
  version: 1,
  numProgsEnabled: 2,
  isXdpFrags: 3,
  chainCallActions: 4,
  runPrios: 44,
  programFlags: 84,
} as const;
export const DISPATCHER_MAGIC = 236;
export const DISPATCHER_VERSION = 2;
export const DISPATCHER_SLOTS = 10;
export const XDP_DISPATCHER_RETVAL = 31;
export const TC_DISPATCHER_RETVAL = 30;
/** `BPF_F_XDP_HAS_FRAGS`, as libxdp records it in program_flags. */
export const BPF_F_XDP_HAS_FRAGS = 1 << 5;

/** `BTF_KIND_FUNC`. */
export const BTF_KIND_FUNC = 12;

/** `enum bpf_tc_attach_point`. */
export const TcAttachPoint = { INGRESS: 1, EGRESS: 2, CUSTOM: 4 } as const;

/** `BTF_KIND_DATASEC`, and the BTF type header: 12 bytes {name_off, info, size}; vlen = info & 0xffff. */
export const BTF_KIND_DATASEC = 15;
export const BtfType = { size: 12, nameOff: 0, info: 4, sizeOrType: 8 } as const;
/** `struct btf_var_secinfo`: 12 bytes {type, offset, size}, following a DATASEC header. */
export const BtfVarSecinfo = { size: 12, type: 0, offset: 4, bytes: 8 } as const;

/** `struct bpf_object_open_opts` (80 bytes). */
export const ObjectOpenOpts = { size: 80, kernelLogBuf: 56, kernelLogSize: 64, kernelLogLevel: 72 } as const;

/** `struct bpf_tc_hook` (24 bytes). */
export const TcHook = { size: 24, ifindex: 8, attachPoint: 12, parent: 16 } as const;

/** `struct bpf_tc_opts` (32 bytes). */
export const TcOpts = { size: 32, progFd: 8, flags: 12, progId: 16, handle: 20, priority: 24 } as const;
/** `BPF_TC_F_REPLACE`: replace the filter with the same handle and priority in place. */
export const BPF_TC_F_REPLACE = 1;

/** `struct bpf_xdp_attach_opts` (16 bytes) and `struct bpf_xdp_query_opts` (32 bytes in libbpf 1.1.2). */
export const XdpAttachOpts = { size: 16, oldProgFd: 8 } as const;
export const XdpQueryOpts = {
  size: 32,
  progId: 8,
  drvProgId: 12,
  hwProgId: 16,
  skbProgId: 20,
  attachMode: 24,
} as const;
/** `XDP_ATTACHED_*` as bpf_xdp_query reports it. */
export const XdpAttached = { NONE: 0, DRV: 1, SKB: 2, HW: 3, MULTI: 4 } as const;

/** The bpf() syscall: number, the commands bpfd issues raw (libbpf 1.1.2 predates TCX), `union bpf_attr`. */
export const SYS_bpf = 321;
export const BpfCmd = {
  PROG_GET_FD_BY_ID: 13,
  OBJ_GET_INFO_BY_FD: 15,
  PROG_QUERY: 16,
  TASK_FD_QUERY: 20,
  LINK_CREATE: 28,
  LINK_UPDATE: 29,
} as const;
/** Bytes of `union bpf_attr` bpfd passes (zeroed beyond the fields a command uses). */
export const BPF_ATTR_SIZE = 64;
/** `bpf_attr.link_create`: tcx {relative_fd|relative_id, expected_revision}; tracing/freplace target_btf_id. */
export const AttrLinkCreate = {
  progFd: 0,
  targetFd: 4,
  attachType: 8,
  flags: 12,
  targetBtfId: 16,
  tcxRelative: 16,
  tcxExpectedRevision: 24,
} as const;
/** `bpf_attr` of BPF_PROG_GET_FD_BY_ID (`prog_id`) and BPF_OBJ_GET_INFO_BY_FD (`info`). */
export const AttrGetFdById = { size: 12, id: 0 } as const;
export const AttrObjInfo = { size: 16, bpfFd: 0, infoLen: 4, info: 8 } as const;
/** `bpf_attr.task_fd_query`: what a process's fd (a perf event, a raw tracepoint) runs. */
export const AttrTaskFdQuery = {
  size: 48,
  pid: 0,
  fd: 4,
  bufLen: 12,
  buf: 16,
  progId: 24,
  fdType: 28,
  probeOffset: 32,
  probeAddr: 40,
} as const;
/** `enum bpf_task_fd_type`. */
export const BPF_FD_TYPE_NAMES: Record<number, string> = {
  0: "raw_tracepoint",
  1: "tracepoint",
  2: "kprobe",
  3: "kretprobe",
  4: "uprobe",
  5: "uretprobe",
};
/** `bpf_attr.link_update`. */
export const AttrLinkUpdate = { linkFd: 0, newProgFd: 4, flags: 8, oldProgFd: 12 } as const;
/** `bpf_attr.query` (BPF_PROG_QUERY), with the mprog fields of kernels >= 6.6. */
export const AttrProgQuery = {
  targetFd: 0,
  attachType: 4,
  queryFlags: 8,
  attachFlags: 12,
  progIds: 16,
  count: 24,
  progAttachFlags: 32,
  linkIds: 40,
  linkAttachFlags: 48,
  revision: 56,
} as const;
/** Attach flags of mprog hooks (TCX): position relative to a program or link, by fd or id. */
export const BpfAttachFlags = {
  REPLACE: 1 << 2,
  BEFORE: 1 << 3,
  AFTER: 1 << 4,
  ID: 1 << 5,
  LINK: 1 << 13,
} as const;

/** `struct bpf_link_create_opts` (64 bytes in libbpf 1.1.2). */
export const LinkCreateOpts = { size: 64, flags: 8, perfEventBpfCookie: 32 } as const;

/** `struct bpf_obj_get_opts` (libbpf 1.0+): opening a pin with `file_flags` (BPF_F_RDONLY). */
export const ObjGetOpts = { size: 16, sz: 0, fileFlags: 8 } as const;

/** `struct bpf_prog_info`, the prefix bpfd reads (232 bytes in 6.1 UAPI; newer kernels accept it). */
export const ProgInfo = {
  size: 232,
  type: 0,
  id: 4,
  tag: 8,
  jitedProgLen: 16,
  xlatedProgLen: 20,
  loadTime: 40,
  createdByUid: 48,
  nrMapIds: 52,
  mapIds: 56,
  name: 64,
  nameLen: 16,
  ifindex: 80,
  btfId: 128,
  runTimeNs: 192,
  runCnt: 200,
  verifiedInsns: 216,
  attachBtfId: 224,
} as const;

/** `struct bpf_link_info`: header, and the first u32 of the per-type union at 16 (ifindex for xdp/tcx). */
export const LinkInfo = { size: 64, type: 0, id: 4, progId: 8, unionStart: 16, tcxAttachType: 20 } as const;

/** `struct bpf_map_info` (88 bytes). */
export const MapInfo = {
  size: 88,
  type: 0,
  id: 4,
  keySize: 8,
  valueSize: 12,
  maxEntries: 16,
  mapFlags: 20,
  name: 24,
  nameLen: 16,
} as const;

/** `struct perf_event_attr` (128 bytes); `PERF_TYPE_TRACEPOINT`; `PERF_FLAG_FD_CLOEXEC`. */
export const PerfEventAttr = {
  size: 128,
  type: 0,
  sizeField: 4,
  config: 8,
  /** `sample_period`, or `sample_freq` with the `freq` flag. */
  samplePeriod: 16,
  /** The flag bits (`disabled` is bit 0, `freq` bit 10). */
  flags: 40,
  config1: 56,
  config2: 64,
} as const;
export const PERF_TYPE_TRACEPOINT = 2;
/** `PERF_TYPE_HARDWARE` and `PERF_TYPE_SOFTWARE`, with the events bpfd samples on. */
export const PERF_TYPE_HARDWARE = 0;
export const PERF_TYPE_SOFTWARE = 1;
export const PERF_COUNT_HW_CPU_CYCLES = 0;
export const PERF_COUNT_SW_CPU_CLOCK = 0;
export const PERF_COUNT_SW_TASK_CLOCK = 1;
/** `perf_event_attr.freq`: `samplePeriod` is a frequency in Hz. */
export const PERF_ATTR_FLAG_FREQ = 1n << 10n;
export const PERF_FLAG_FD_CLOEXEC = 1 << 3;

/** `struct bpf_test_run_opts` (80 bytes). */
export const TestRunOpts = {
  size: 80,
  dataIn: 8,
  dataOut: 16,
  dataSizeIn: 24,
  dataSizeOut: 28,
  retval: 56,
  repeat: 60,
  duration: 64,
} as const;

/** x86-64 syscall numbers and flags used through libc. */
export const SYS_perf_event_open = 298;
export const CLONE_NEWNET = 0x40000000;
export const O_RDONLY = 0;
export const O_CLOEXEC = 0o2000000;
export const O_DIRECTORY = 0o200000;
/** `flock` operations. */
export const LOCK_EX = 2;
export const LOCK_UN = 8;
/** `BPF_F_RDONLY` for `bpf_obj_get_opts`-style opens. */
export const BPF_F_RDONLY = 1 << 3;

/** One slot of a dispatcher's configuration. */
export interface SlotConfig {
  chainCallActions: number;
  runPrio: number;
  programFlags: number;
}

/** A dispatcher's configuration, as in its read-only data. */
export interface DispatcherState {
  magic: number;
  version: number;
  isXdpFrags: boolean;
  slots: SlotConfig[];
}

/** The 124 bytes of `struct xdp_dispatcher_config` for these slots. */
export function encodeDispatcherConfig(slots: SlotConfig[], isXdpFrags = false): Uint8Array {
  if (slots.length > DISPATCHER_SLOTS) throw new Error(`a dispatcher has ${DISPATCHER_SLOTS} slots`);
  const bytes = new Uint8Array(DispatcherConfig.size);
  const dv = new DataView(bytes.buffer);
  dv.setUint8(DispatcherConfig.magic, DISPATCHER_MAGIC);
  dv.setUint8(DispatcherConfig.version, DISPATCHER_VERSION);
  dv.setUint8(DispatcherConfig.numProgsEnabled, slots.length);
  dv.setUint8(DispatcherConfig.isXdpFrags, isXdpFrags ? 1 : 0);
  slots.forEach((slot, i) => {
    dv.setUint32(DispatcherConfig.chainCallActions + 4 * i, slot.chainCallActions >>> 0, true);
    dv.setUint32(DispatcherConfig.runPrios + 4 * i, slot.runPrio >>> 0, true);
    dv.setUint32(DispatcherConfig.programFlags + 4 * i, slot.programFlags >>> 0, true);
  });
  return bytes;
}

/** Reads a dispatcher configuration; undefined when the bytes are not a version-2 dispatcher's. */
export function decodeDispatcherConfig(bytes: Uint8Array): DispatcherState | undefined {
  if (bytes.length !== DispatcherConfig.size) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint8(DispatcherConfig.magic);
  const version = dv.getUint8(DispatcherConfig.version);
  if (magic !== DISPATCHER_MAGIC || version !== DISPATCHER_VERSION) return undefined;
  const count = Math.min(dv.getUint8(DispatcherConfig.numProgsEnabled), DISPATCHER_SLOTS);
  const slots = Array.from({ length: count }, (_, i) => ({
    chainCallActions: dv.getUint32(DispatcherConfig.chainCallActions + 4 * i, true),
    runPrio: dv.getUint32(DispatcherConfig.runPrios + 4 * i, true),
    programFlags: dv.getUint32(DispatcherConfig.programFlags + 4 * i, true),
  }));
  return { magic, version, isXdpFrags: dv.getUint8(DispatcherConfig.isXdpFrags) !== 0, slots };
}

/** rtnetlink: dumps of tc qdiscs, classes and filters, and what their answers carry. */
export const Rtnl = {
  AF_NETLINK: 16,
  NETLINK_ROUTE: 0,
  SOCK_RAW: 3,
  RTM_NEWQDISC: 36,
  RTM_GETQDISC: 38,
  RTM_NEWTCLASS: 40,
  RTM_GETTCLASS: 42,
  RTM_NEWTFILTER: 44,
  RTM_GETTFILTER: 46,
  NLMSG_ERROR: 2,
  NLMSG_DONE: 3,
  NLM_F_REQUEST: 1,
  NLM_F_DUMP: 0x300,
  TCA_KIND: 1,
  TCA_OPTIONS: 2,
  TCA_CHAIN: 11,
  TCA_BPF_NAME: 7,
  TCA_BPF_FLAGS: 8,
  TCA_BPF_ID: 11,
  TCA_BPF_FLAG_ACT_DIRECT: 1,
} as const;
/** `struct nlmsghdr`, `struct tcmsg` (after it) and `struct rtattr`. */
export const NlMsgHdr = { size: 16, len: 0, type: 4, flags: 6, seq: 8 } as const;
export const TcMsg = { size: 20, ifindex: 4, handle: 8, parent: 12, info: 16 } as const;
export const RtAttr = { size: 4, len: 0, type: 2 } as const;
/** tc handles with a name: the root, clsact's (and the ingress qdisc's) ingress and egress. */
export const TC_H = {
  ROOT: 0xffffffff,
  INGRESS: 0xfffffff2,
  EGRESS: 0xfffffff3,
  CLSACT_MAJOR: 0xffff,
} as const;
