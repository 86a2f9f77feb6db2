/**
 * The cls_bpf filters of an interface over rtnetlink, as `tc filter show` finds them: a dump of the qdiscs
 * (RTM_GETQDISC) and classes (RTM_GETTCLASS), then of the filters (RTM_GETTFILTER) of each qdisc handle and
 * class id, clsact's ingress and egress, and a root qdisc without a handle. One netlink socket per walk, made
 * in the calling thread's network namespace.
 *
 * @example
 * ```ts
 * using walk = new TcWalk();
 * for (const f of walk.bpfFilters(ifindex).filters) console.log(f.parent, f.priority, f.programId, f.name);
 * ```
 * @module
 */
import { NlMsgHdr, RtAttr, Rtnl, TC_H, TcMsg } from "./abi.ts";
import { SysError } from "./errno.ts";
import { closeFd, lastErrno, libc } from "./libc.ts";

/** A cls_bpf filter. */
export interface BpfFilter {
  /** Where it is, as tc prints it: `1:`, `1:10`, `root` (a root qdisc without a handle), ingress, egress. */
  parent: string;
  programId: number;
  /** The name tc gave it (object file and section), when it has one. */
  name?: string;
  handle: number;
  priority: number;
  chain: number;
  directAction: boolean;
}

/** One answer of a qdisc, class or filter dump: its `tcmsg` and the attributes bpfd reads. */
export interface TcMessage {
  /** RTM_NEWQDISC, RTM_NEWTCLASS, RTM_NEWTFILTER, NLMSG_DONE or NLMSG_ERROR. */
  type: number;
  seq: number;
  ifindex: number;
  handle: number;
  parent: number;
  info: number;
  kind?: string;
  chain?: number;
  /** A cls_bpf filter's program. */
  bpf?: { programId: number; name?: string; directAction: boolean };
}

/** The filters of an interface, and how many of its qdiscs and classes were not looked at (past the cap). */
export interface TcFilters {
  filters: BpfFilter[];
  skipped: number;
}

/** At most this many qdiscs and classes of one interface have their filters dumped. */
export const MAX_TC_PARENTS = 1024;

const SOCK_CLOEXEC = 0o2000000;
const decoder = new TextDecoder();

type Span = { start: number; end: number };

/** The rtattrs of `[from, to)`, by type. */
function attrs(dv: DataView, from: number, to: number): Map<number, Span> {
  const found = new Map<number, Span>();
  for (let at = from; at + RtAttr.size <= to;) {
    const len = dv.getUint16(at + RtAttr.len, true);
    if (len < RtAttr.size || at + len > to) break;
    found.set(dv.getUint16(at + RtAttr.type, true) & 0x3fff, { start: at + RtAttr.size, end: at + len });
    at += (len + 3) & ~3;
  }
  return found;
}

function text(buf: Uint8Array, a: Span): string {
  const bytes = buf.subarray(a.start, a.end);
  const nul = bytes.indexOf(0);
  return decoder.decode(nul < 0 ? bytes : bytes.subarray(0, nul));
}

/** The messages in `buf[0, length)` (what one recv returned, or a recorded dump). */
export function parseTcMessages(buf: Uint8Array, length = buf.length): TcMessage[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, length);
  const found: TcMessage[] = [];
  for (let at = 0; at + NlMsgHdr.size <= length;) {
    const len = dv.getUint32(at + NlMsgHdr.len, true);
    if (len < NlMsgHdr.size || at + len > length) break;
    const m: TcMessage = {
      type: dv.getUint16(at + NlMsgHdr.type, true),
      seq: dv.getUint32(at + NlMsgHdr.seq, true),
      ifindex: 0,
      handle: 0,
      parent: 0,
      info: 0,
    };
    const tcm = at + NlMsgHdr.size;
    if (m.type !== Rtnl.NLMSG_DONE && m.type !== Rtnl.NLMSG_ERROR && len >= NlMsgHdr.size + TcMsg.size) {
      m.ifindex = dv.getInt32(tcm + TcMsg.ifindex, true);
      m.handle = dv.getUint32(tcm + TcMsg.handle, true);
      m.parent = dv.getUint32(tcm + TcMsg.parent, true);
      m.info = dv.getUint32(tcm + TcMsg.info, true);
      const top = attrs(dv, tcm + TcMsg.size, at + len);
      const kind = top.get(Rtnl.TCA_KIND), chain = top.get(Rtnl.TCA_CHAIN);
      if (kind) m.kind = text(buf, kind);
      if (chain) m.chain = dv.getUint32(chain.start, true);
      const options = top.get(Rtnl.TCA_OPTIONS);
      if (m.type === Rtnl.RTM_NEWTFILTER && m.kind === "bpf" && options) {
        const bpf = attrs(dv, options.start, options.end);
        const id = bpf.get(Rtnl.TCA_BPF_ID), name = bpf.get(Rtnl.TCA_BPF_NAME);
        const flags = bpf.get(Rtnl.TCA_BPF_FLAGS);
        if (id) {
          m.bpf = {
            programId: dv.getUint32(id.start, true),
            ...(name ? { name: text(buf, name) } : {}),
            directAction: !!flags && (dv.getUint32(flags.start, true) & Rtnl.TCA_BPF_FLAG_ACT_DIRECT) !== 0,
          };
        }
      }
    }
    found.push(m);
    at += (len + 3) & ~3;
  }
  return found;
}

/** A tc handle as tc prints it: `root`, `ingress`, `egress`, `1:`, `1:10`. */
export function tcHandleName(handle: number): string {
  if (handle === TC_H.ROOT) return "root";
  if (handle === TC_H.INGRESS) return "ingress";
  if (handle === TC_H.EGRESS) return "egress";
  const minor = handle & 0xffff;
  return `${(handle >>> 16).toString(16)}:${minor ? minor.toString(16) : ""}`;
}

/**
 * The parents whose filters to dump, from the qdisc and class dumps of one interface: the value to ask with
 * and the name to show; qdiscs first (their filters outlast the cap), then classes by id.
 */
export function tcParents(qdiscs: TcMessage[], classes: TcMessage[]): Array<{ id: number; name: string }> {
  const parents: Array<{ id: number; name: string }> = [];
  for (const q of qdiscs) {
    if (q.kind === "clsact" || q.kind === "ingress") {
      parents.push({ id: TC_H.INGRESS, name: "ingress" });
      if (q.kind === "clsact") parents.push({ id: TC_H.EGRESS, name: "egress" });
    } else if (q.handle !== 0) {
      parents.push({ id: q.handle, name: tcHandleName(q.handle) });
    } else if (q.parent === TC_H.ROOT) {
      parents.push({ id: 0, name: "root" }); // asked as 0: the root qdisc
    }
  }
  for (const c of classes.toSorted((a, b) => a.handle - b.handle)) {
    if ((c.handle & 0xffff) !== 0 && c.handle >>> 16 !== TC_H.CLSACT_MAJOR) {
      parents.push({ id: c.handle, name: tcHandleName(c.handle) });
    }
  }
  return parents;
}

/** The cls_bpf filters among one filter dump's answers, shown under `parent`. */
export function bpfFiltersOf(messages: TcMessage[], parent: string): BpfFilter[] {
  return messages.flatMap((m) =>
    m.type === Rtnl.RTM_NEWTFILTER && m.bpf
      ? [{
        parent,
        programId: m.bpf.programId,
        ...(m.bpf.name !== undefined ? { name: m.bpf.name } : {}),
        handle: m.handle,
        priority: m.info >>> 16,
        chain: m.chain ?? 0,
        directAction: m.bpf.directAction,
      }]
      : []
  );
}

/** One rtnetlink socket for a walk over the interfaces of the calling thread's network namespace. */
export class TcWalk implements Disposable {
  /** The netlink socket, opened by the first dump (so a walk that cannot open one fails per interface). */
  #fd = -1;
  #seq = 0;
  #buf = new Uint8Array(64 << 10);
  #qdiscs?: Map<number, TcMessage[]>;

  /** The cls_bpf filters of interface `ifindex`, on at most `maxParents` of its qdiscs and classes. */
  bpfFilters(ifindex: number, maxParents = MAX_TC_PARENTS): TcFilters {
    this.#qdiscs ??= Map.groupBy(this.#dump(Rtnl.RTM_GETQDISC, 0, 0), (q) => q.ifindex);
    const qdiscs = this.#qdiscs.get(ifindex) ?? [];
    if (qdiscs.length === 0) return { filters: [], skipped: 0 };
    const parents = tcParents(qdiscs, this.#dump(Rtnl.RTM_GETTCLASS, ifindex, 0));
    const filters = parents.slice(0, maxParents)
      .flatMap((p) => bpfFiltersOf(this.#dump(Rtnl.RTM_GETTFILTER, ifindex, p.id), p.name));
    return { filters, skipped: Math.max(0, parents.length - maxParents) };
  }

  /** Sends one dump request and collects its answers (none when the kernel answers with an error). */
  #dump(type: number, ifindex: number, parent: number): TcMessage[] {
    if (this.#fd < 0) {
      this.#fd = libc.socket(Rtnl.AF_NETLINK, Rtnl.SOCK_RAW | SOCK_CLOEXEC, Rtnl.NETLINK_ROUTE);
      if (this.#fd < 0) throw new SysError("socket (netlink)", lastErrno());
    }
    const seq = ++this.#seq;
    const req = new Uint8Array(NlMsgHdr.size + TcMsg.size);
    const rq = new DataView(req.buffer);
    rq.setUint32(NlMsgHdr.len, req.length, true);
    rq.setUint16(NlMsgHdr.type, type, true);
    rq.setUint16(NlMsgHdr.flags, Rtnl.NLM_F_REQUEST | Rtnl.NLM_F_DUMP, true);
    rq.setUint32(NlMsgHdr.seq, seq, true);
    rq.setInt32(NlMsgHdr.size + TcMsg.ifindex, ifindex, true);
    rq.setUint32(NlMsgHdr.size + TcMsg.parent, parent, true);
    if (Number(libc.send(this.#fd, req, BigInt(req.length), 0)) < 0) {
      throw new SysError("send (netlink)", lastErrno());
    }
    const found: TcMessage[] = [];
    for (;;) {
      const n = Number(libc.recv(this.#fd, this.#buf, BigInt(this.#buf.length), 0));
      if (n < 0) throw new SysError("recv (netlink)", lastErrno());
      if (n === 0) return found;
      for (const m of parseTcMessages(this.#buf, n)) {
        if (m.seq !== seq) continue; // a late answer to an earlier request
        if (m.type === Rtnl.NLMSG_DONE || m.type === Rtnl.NLMSG_ERROR) return found; // error: no such parent
        found.push(m);
      }
    }
  }

  [Symbol.dispose](): void {
    closeFd(this.#fd);
  }
}
