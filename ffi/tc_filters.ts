/**
 * The tc filters of an interface over rtnetlink (an RTM_GETTFILTER dump, as `tc filter show` asks): the
 * cls_bpf ones, with their program id, handle, priority and chain, on the root qdisc and clsact's ingress
 * and egress. The socket is made in the calling thread's network namespace.
 *
 * @example
 * ```ts
 * for (const f of bpfFilters(ifindex)) console.log(f.parent, f.priority, f.programId, f.name);
 * ```
 * @module
 */
import { NlMsgHdr, RtAttr, Rtnl, TC_PARENTS, TcMsg } from "./abi.ts";
import { SysError } from "./errno.ts";
import { closeFd, lastErrno, libc } from "./libc.ts";

/** A cls_bpf filter. */
export interface BpfFilter {
  /** root, ingress or egress. */
  parent: string;
  programId: number;
  /** The name tc gave it (object file and section), when it has one. */
  name?: string;
  handle: number;
  priority: number;
  chain: number;
  directAction: boolean;
}

const SOCK_CLOEXEC = 0o2000000;

/** The rtattrs of `buf[from, to)`, by type. */
function attrs(dv: DataView, from: number, to: number): Map<number, { start: number; end: number }> {
  const found = new Map<number, { start: number; end: number }>();
  for (let at = from; at + RtAttr.size <= to;) {
    const len = dv.getUint16(at + RtAttr.len, true);
    if (len < RtAttr.size) break;
    found.set(dv.getUint16(at + RtAttr.type, true) & 0x3fff, { start: at + RtAttr.size, end: at + len });
    at += (len + 3) & ~3;
  }
  return found;
}

function text(buf: Uint8Array, a: { start: number; end: number }): string {
  const bytes = buf.subarray(a.start, a.end);
  const nul = bytes.indexOf(0);
  return new TextDecoder().decode(nul < 0 ? bytes : bytes.subarray(0, nul));
}

/** One filter answer, if it is a cls_bpf filter. */
function parseFilter(
  buf: Uint8Array,
  dv: DataView,
  at: number,
  end: number,
  parent: string,
): BpfFilter | undefined {
  const tcm = at + NlMsgHdr.size;
  const top = attrs(dv, tcm + TcMsg.size, end);
  const kind = top.get(Rtnl.TCA_KIND), options = top.get(Rtnl.TCA_OPTIONS);
  if (!kind || text(buf, kind) !== "bpf" || !options) return undefined;
  const bpf = attrs(dv, options.start, options.end);
  const id = bpf.get(Rtnl.TCA_BPF_ID);
  if (!id) return undefined;
  const name = bpf.get(Rtnl.TCA_BPF_NAME), flags = bpf.get(Rtnl.TCA_BPF_FLAGS);
  const chain = top.get(Rtnl.TCA_CHAIN);
  return {
    parent,
    programId: dv.getUint32(id.start, true),
    ...(name ? { name: text(buf, name) } : {}),
    handle: dv.getUint32(tcm + TcMsg.handle, true),
    priority: dv.getUint32(tcm + TcMsg.info, true) >>> 16,
    chain: chain ? dv.getUint32(chain.start, true) : 0,
    directAction: !!flags && (dv.getUint32(flags.start, true) & Rtnl.TCA_BPF_FLAG_ACT_DIRECT) !== 0,
  };
}

/** Sends one dump request for `ifindex`'s filters under `parent` and collects the cls_bpf ones. */
function dump(
  fd: number,
  ifindex: number,
  parent: string,
  seq: number,
  buf: Uint8Array<ArrayBuffer>,
): BpfFilter[] {
  const req = new Uint8Array(NlMsgHdr.size + TcMsg.size);
  const rq = new DataView(req.buffer);
  rq.setUint32(NlMsgHdr.len, req.length, true);
  rq.setUint16(NlMsgHdr.type, Rtnl.RTM_GETTFILTER, true);
  rq.setUint16(NlMsgHdr.flags, Rtnl.NLM_F_REQUEST | Rtnl.NLM_F_DUMP, true);
  rq.setUint32(NlMsgHdr.seq, seq, true);
  rq.setInt32(NlMsgHdr.size + TcMsg.ifindex, ifindex, true);
  rq.setUint32(NlMsgHdr.size + TcMsg.parent, TC_PARENTS[parent], true);
  if (Number(libc.send(fd, req, BigInt(req.length), 0)) < 0) {
    throw new SysError("send (netlink)", lastErrno());
  }
  const found: BpfFilter[] = [];
  const dv = new DataView(buf.buffer);
  for (;;) {
    const n = Number(libc.recv(fd, buf, BigInt(buf.length), 0));
    if (n < 0) throw new SysError("recv (netlink)", lastErrno());
    for (let at = 0; at + NlMsgHdr.size <= n;) {
      const len = dv.getUint32(at + NlMsgHdr.len, true);
      const type = dv.getUint16(at + NlMsgHdr.type, true);
      if (len < NlMsgHdr.size) return found;
      if (dv.getUint32(at + NlMsgHdr.seq, true) === seq) {
        if (type === Rtnl.NLMSG_DONE || type === Rtnl.NLMSG_ERROR) return found; // an error: no such qdisc
        if (type === Rtnl.RTM_NEWTFILTER) {
          const f = parseFilter(buf, dv, at, at + len, parent);
          if (f) found.push(f);
        }
      }
      at += (len + 3) & ~3;
    }
  }
}

/** The cls_bpf filters of interface `ifindex` (in the calling thread's network namespace). */
export function bpfFilters(ifindex: number): BpfFilter[] {
  const fd = libc.socket(Rtnl.AF_NETLINK, Rtnl.SOCK_RAW | SOCK_CLOEXEC, Rtnl.NETLINK_ROUTE);
  if (fd < 0) throw new SysError("socket (netlink)", lastErrno());
  try {
    const buf = new Uint8Array(64 << 10);
    return Object.keys(TC_PARENTS).flatMap((parent, i) => dump(fd, ifindex, parent, i + 1, buf));
  } finally {
    closeFd(fd);
  }
}
