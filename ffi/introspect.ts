/**
 * What the kernel says about BPF objects bpfd did not make, for the node inventory: each link's target
 * (`struct bpf_link_info` of every link type), the programs attached to a cgroup without a link
 * (`BPF_PROG_QUERY`), a map's memory (`memlock` in fdinfo) and kernel-wide run statistics
 * (`BPF_ENABLE_STATS`). Symbols come from ./libbpf.ts and ./libc.ts.
 *
 * @example
 * ```ts
 * console.log(interfaces());
 * ```
 * @module
 */
import { LINK_TYPE_NAMES, SYS_bpf } from "./abi.ts";
import { errnoName } from "./errno.ts";
import { closeFd, lastErrno, libc } from "./libc.ts";
import { lib } from "./libbpf.ts";

/** `struct bpf_link_info` (kernel 6.x UAPI): header and the per-type union at 16. */
export const LinkInfoLayout = {
  size: 96,
  type: 0,
  id: 4,
  progId: 8,
  union: 16,
  /** raw_tracepoint: tp_name pointer @16, length @24. perf_event: type @16, name pointer @24, length @32. */
  perfName: 24,
  perfNameLen: 32,
} as const;

/** `enum bpf_perf_event_type` names by value. */
const PERF_EVENT_TYPES = ["unspec", "uprobe", "uretprobe", "kprobe", "kretprobe", "tracepoint", "event"];

/** `enum bpf_attach_type` names by value (the ones bpftool prints), for cgroup, netns and tracing links. */
export const ATTACH_TYPE_NAMES = [
  "cgroup_inet_ingress",
  "cgroup_inet_egress",
  "cgroup_inet_sock_create",
  "cgroup_sock_ops",
  "sk_skb_stream_parser",
  "sk_skb_stream_verdict",
  "cgroup_device",
  "sk_msg_verdict",
  "cgroup_inet4_bind",
  "cgroup_inet6_bind",
  "cgroup_inet4_connect",
  "cgroup_inet6_connect",
  "cgroup_inet4_post_bind",
  "cgroup_inet6_post_bind",
  "cgroup_udp4_sendmsg",
  "cgroup_udp6_sendmsg",
  "lirc_mode2",
  "flow_dissector",
  "cgroup_sysctl",
  "cgroup_udp4_recvmsg",
  "cgroup_udp6_recvmsg",
  "cgroup_getsockopt",
  "cgroup_setsockopt",
  "trace_raw_tp",
  "trace_fentry",
  "trace_fexit",
  "modify_return",
  "lsm_mac",
  "trace_iter",
  "cgroup_inet4_getpeername",
  "cgroup_inet6_getpeername",
  "cgroup_inet4_getsockname",
  "cgroup_inet6_getsockname",
  "xdp_devmap",
  "cgroup_inet_sock_release",
  "xdp_cpumap",
  "sk_lookup",
  "xdp",
  "sk_skb_verdict",
  "sk_reuseport_select",
  "sk_reuseport_select_or_migrate",
  "perf_event",
  "trace_kprobe_multi",
  "lsm_cgroup",
  "struct_ops",
  "netfilter",
  "tcx_ingress",
  "tcx_egress",
  "trace_uprobe_multi",
  "cgroup_unix_connect",
  "cgroup_unix_sendmsg",
  "cgroup_unix_recvmsg",
  "cgroup_unix_getpeername",
  "cgroup_unix_getsockname",
  "netkit_primary",
  "netkit_peer",
  "trace_kprobe_session",
];

/** The attach types that attach to a cgroup (queried on each cgroup directory). */
export const CGROUP_ATTACH_TYPES: readonly number[] = ATTACH_TYPE_NAMES
  .map((name, i) => name.startsWith("cgroup_") || name === "lsm_cgroup" ? i : -1)
  .filter((i) => i >= 0);

/** A link as the kernel describes it: its type, program and target. */
export interface LinkDetails {
  id: number;
  type: string;
  programId: number;
  attachType?: string;
  ifindex?: number;
  cgroupId?: string;
  netnsIno?: number;
  /** Tracepoint, kprobe function or uprobe file, for raw_tracepoint and perf_event links. */
  target?: string;
  perfEvent?: string;
  /** The program or BTF object a tracing link (fentry, freplace) attaches to. */
  targetProgramId?: number;
}

const attachName = (n: number) => ATTACH_TYPE_NAMES[n] ?? `attach ${n}`;

function info(fd: number, buf: Uint8Array<ArrayBuffer>): boolean {
  const len = new Uint32Array([buf.length]);
  return lib.bpf_obj_get_info_by_fd(fd, buf, new Uint8Array(len.buffer)) === 0;
}

function readName(buf: Uint8Array): string {
  const end = buf.indexOf(0);
  return new TextDecoder().decode(end < 0 ? buf : buf.subarray(0, end));
}

/** Link `id` with its target, or undefined when it is gone (released while being read). */
export function linkDetails(id: number): LinkDetails | undefined {
  const fd = lib.bpf_link_get_fd_by_id(id);
  if (fd < 0) return undefined;
  try {
    const buf = new Uint8Array(LinkInfoLayout.size);
    if (!info(fd, buf)) return undefined;
    let dv = new DataView(buf.buffer);
    const typeId = dv.getUint32(LinkInfoLayout.type, true);
    const type = LINK_TYPE_NAMES[typeId] ?? `type ${typeId}`;
    const base = { id, type, programId: dv.getUint32(LinkInfoLayout.progId, true) };
    const u32 = (at: number) => dv.getUint32(LinkInfoLayout.union + at, true);
    switch (type) {
      case "xdp":
        return { ...base, ifindex: u32(0) };
      case "tcx":
      case "netkit":
        return { ...base, ifindex: u32(0), attachType: attachName(u32(4)) };
      case "cgroup":
        return {
          ...base,
          cgroupId: dv.getBigUint64(LinkInfoLayout.union, true).toString(),
          attachType: attachName(u32(8)),
        };
      case "netns":
        return { ...base, netnsIno: u32(0), attachType: attachName(u32(4)) };
      case "tracing":
        return { ...base, attachType: attachName(u32(0)), targetProgramId: u32(4) || undefined };
      case "raw_tracepoint":
      case "perf_event": {
        // A second call with a buffer for the name.
        const name = new Uint8Array(256);
        const again = new Uint8Array(LinkInfoLayout.size);
        dv = new DataView(again.buffer);
        const ptr = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(name)));
        const raw = type === "raw_tracepoint";
        dv.setBigUint64(raw ? LinkInfoLayout.union : LinkInfoLayout.perfName, ptr, true);
        dv.setUint32(raw ? LinkInfoLayout.union + 8 : LinkInfoLayout.perfNameLen, name.length, true);
        const named = info(fd, again);
        const target = named ? readName(name) || undefined : undefined;
        if (raw) return { ...base, target };
        return { ...base, target, perfEvent: PERF_EVENT_TYPES[u32(0)] ?? `type ${u32(0)}` };
      }
      default:
        return base;
    }
  } finally {
    closeFd(fd);
  }
}

/** The memory a map is charged (`memlock` of its fdinfo, bytes), or undefined when it is gone. */
export function mapMemlock(id: number): number | undefined {
  const fd = lib.bpf_map_get_fd_by_id(id);
  if (fd < 0) return undefined;
  try {
    const text = Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`);
    const m = text.match(/^memlock:\s*(\d+)/m);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined; /* fdinfo unreadable: the memory is unknown */
  } finally {
    closeFd(fd);
  }
}

const O_RDONLY_DIRECTORY = 0o200000;

/** Program ids attached to cgroup directory `path` with `attachType` (BPF_PROG_QUERY), [] when none. */
export function cgroupPrograms(path: string, attachTypes: readonly number[]): Map<number, number[]> {
  const found = new Map<number, number[]>();
  const fd = libc.open(new TextEncoder().encode(`${path}\0`), O_RDONLY_DIRECTORY);
  if (fd < 0) return found;
  try {
    for (const type of attachTypes) {
      const count = new Uint32Array([64]);
      const progIds = new Uint32Array(64);
      const flags = new Uint32Array(1);
      const r = lib.bpf_prog_query(
        fd,
        type,
        0,
        new Uint8Array(flags.buffer),
        new Uint8Array(progIds.buffer),
        new Uint8Array(count.buffer),
      );
      if (r === 0 && count[0] > 0) found.set(type, [...progIds.subarray(0, Math.min(64, count[0]))]);
    }
  } finally {
    closeFd(fd);
  }
  return found;
}

const BPF_ENABLE_STATS = 32;
const BPF_STATS_RUN_TIME = 0;

let statsFd: number | undefined;

/** Whether this process holds the kernel's run statistics on (the sysctl does not show it). */
export const runStatsHeld = (): boolean => statsFd !== undefined;

/**
 * Turns on the kernel's run-time statistics (run_cnt, run_time_ns) for as long as this process lives
 * (`BPF_ENABLE_STATS`; once per process); throws with the errno when the kernel refuses.
 */
export function enableRunStats(): number {
  if (statsFd !== undefined) return statsFd;
  const attr = new Uint8Array(8);
  new DataView(attr.buffer).setUint32(0, BPF_STATS_RUN_TIME, true);
  const r = Number(libc.syscall_bpf(BigInt(SYS_bpf), BigInt(BPF_ENABLE_STATS), attr, attr.length));
  if (r < 0) {
    throw new Error(`BPF_ENABLE_STATS refused: ${errnoName(lastErrno())}`);
  }
  statsFd = r;
  return r;
}

/** The network interfaces of the calling thread's network namespace (`if_nameindex`). */
export function interfaces(): Array<{ index: number; name: string }> {
  const head = libc.if_nameindex();
  if (!head) return [];
  const found: Array<{ index: number; name: string }> = [];
  try {
    const view = new Deno.UnsafePointerView(head);
    // struct if_nameindex { unsigned int if_index; char *if_name; }: 16 bytes, ends with index 0.
    for (let at = 0;; at += 16) {
      const index = view.getUint32(at);
      if (index === 0) break;
      const name = view.getPointer(at + 8);
      found.push({ index, name: name ? Deno.UnsafePointerView.getCString(name) : String(index) });
    }
  } finally {
    libc.if_freenameindex(head);
  }
  return found;
}
