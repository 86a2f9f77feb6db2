/**
 * tc on an interface's ingress or egress (cls_bpf on the clsact qdisc, any kernel): alone, a program is
 * a filter of its own whose handle is the bpfd link id (so it can be found after a crash); with others
 * of bpfd's, they share the first one's filter, which runs a dispatcher. `tc -j` tells whether anyone's
 * filters are left before the qdisc bpfd created goes.
 *
 * @example
 * ```ts
 * const change = await tc.attach(kernel, { link, spec, program, hook });
 * ```
 * @module
 */
import { TcAttachPoint } from "../../ffi/abi.ts";
import { hasErrno, type LibbpfError, type SysError } from "../../ffi/errno.ts";
import * as bpf from "../../ffi/libbpf.ts";
import { inNetns } from "../../ffi/libc.ts";
import { tcAttach, tcDetach, tcHookCreate, tcHookDestroy, tcQuery } from "../../ffi/netlink.ts";
import type { LinkRecord } from "../../model/schemas.ts";
import type { TcHook, TcPlacement } from "../chains/tc.ts";
import { conflict, type KernelError, refused } from "../errors.ts";
import { programInfo } from "../inspect.ts";
import { ifindexOf, netnsPath } from "../netns.ts";
import {
  ALONE,
  type Attachment,
  chainMember,
  type HookChange,
  type HookContext,
  type HookKind,
  type HookMember,
  type HookOp,
  hookSpec,
  type KernelParts,
  type NetworkAttach,
  placed,
} from "./kind.ts";

type TcAttach = Extract<NetworkAttach, { type: "tc" }>;
type Filter = { handle: number; priority: number };

const pointOf = (spec: TcAttach) =>
  spec.direction === "ingress" ? TcAttachPoint.INGRESS : TcAttachPoint.EGRESS;

function tcHook(spec: TcAttach, ifindex: number, filter: Filter): TcHook {
  return { iface: spec.iface, ifindex, netns: netnsPath(spec.netns), direction: spec.direction, filter };
}

/** bpfd's other tc links on the hook that run in its shared filter. */
function tcPeers(hook: HookContext): HookMember[] {
  return hook.peers.filter((p) => p.link.attach.type === "tc" && p.link.tc && p.link.ifindex);
}

function filterTaken(spec: TcAttach, err: SysError | LibbpfError): KernelError {
  return conflict(
    "hook",
    `${spec.iface} ${spec.direction} already has a tc filter at priority ${spec.priority + 1}`,
    { errno: err.code },
  );
}

/** Makes the shared filter run `members` in priority order. */
async function apply(
  k: KernelParts,
  hook: { spec: TcAttach; ifindex: number; filter: Filter; reload: HookContext["reload"] },
  members: HookMember[],
): Promise<TcPlacement> {
  const { spec, ifindex, filter, reload } = hook;
  try {
    return await k.tc.apply(tcHook(spec, ifindex, filter), members.map((m) => chainMember(m, reload)));
  } catch (err) {
    throw refused(err, `attach tc ${spec.direction} to ${spec.iface}`);
  }
}

/** The kernel side of the links in the shared filter after a change. */
function inFilter(ifindex: number, filter: Filter, placement: TcPlacement) {
  return (l: LinkRecord): Attachment => ({
    ifindex,
    tc: l.tc ?? { ...filter, qdiscCreated: false },
    slotProgramId: placement.get(l.id)?.slotProgramId,
  });
}

/** Joins (or rejoins, after a change) the peers' shared filter. */
async function share(k: KernelParts, { link, spec, program, hook }: HookOp<TcAttach>): Promise<HookChange> {
  const ifindex = ifindexOf(spec.iface, spec.netns);
  const peers = tcPeers(hook);
  const filter = peers[0].link.tc!;
  const placement = await apply(k, { spec, ifindex, filter, reload: hook.reload }, [...peers, {
    link,
    program,
  }]);
  const at = inFilter(ifindex, { handle: filter.handle, priority: filter.priority }, placement);
  return { self: at({ ...link, tc: undefined }), peers: placed(peers, at) };
}

/** A filter of its own: the handle is the bpfd link id. */
function attachFilter(k: KernelParts, link: LinkRecord, spec: TcAttach): Attachment {
  const ifindex = ifindexOf(spec.iface, spec.netns);
  const point = pointOf(spec);
  return bpf.withFd(
    bpf.objGet(k.pins.program(link.programId)),
    (progFd) =>
      inNetns(netnsPath(spec.netns), () => {
        let qdiscCreated = false;
        try {
          qdiscCreated = tcHookCreate(ifindex, point);
          const { handle, priority } = tcAttach(ifindex, point, progFd, link.id, spec.priority + 1);
          return { ifindex, tc: { handle, priority, qdiscCreated } };
        } catch (err) {
          if (qdiscCreated) tcHookDestroy(ifindex, TcAttachPoint.INGRESS | TcAttachPoint.EGRESS);
          if (hasErrno(err, "EEXIST")) throw filterTaken(spec, err);
          throw refused(err, `attach tc ${spec.direction} filter to ${spec.iface}`);
        }
      }),
  );
}

/**
 * A tc filter's priority is its place: a new priority adds the filter at the new place first, then
 * removes the old one, so the program never stops running (it may run twice for packets in between).
 */
function moveFilter(k: KernelParts, link: LinkRecord, spec: TcAttach): Attachment {
  const { ifindex, tc } = link;
  if (!tc || !ifindex || tc.priority === spec.priority + 1) return { ifindex, tc };
  const point = pointOf(spec);
  return inNetns(
    netnsPath(spec.netns),
    () =>
      bpf.withFd(bpf.objGet(k.pins.program(link.programId)), (progFd) => {
        try {
          const moved = tcAttach(ifindex, point, progFd, tc.handle, spec.priority + 1);
          tcDetach(ifindex, point, tc.handle, tc.priority);
          return { ifindex, tc: { ...tc, ...moved } };
        } catch (err) {
          if (hasErrno(err, "EEXIST")) throw filterTaken(spec, err);
          throw refused(err, `move tc filter on ${spec.iface}`);
        }
      }),
  );
}

/** How many tc filters (anyone's) are on an interface's ingress and egress hooks, as `tc -j` lists them. */
async function tcFilterCount(iface: string, netns: string | undefined): Promise<number> {
  let count = 0;
  for (const hook of ["ingress", "egress"]) {
    const tc = ["tc", "-j", "filter", "show", "dev", iface, hook];
    const [cmd, ...args] = netns ? ["nsenter", `--net=${netns}`, ...tc] : tc;
    const { code, stdout } = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    if (code !== 0) return Infinity; // cannot tell: keep the qdisc rather than clobber someone's filters
    const text = new TextDecoder().decode(stdout).trim();
    count += text ? (JSON.parse(text) as unknown[]).length : 0;
  }
  return count;
}

/** Removes a filter of its own, and the clsact qdisc bpfd created when nobody's filters are left. */
async function detachFilter(link: LinkRecord, spec: TcAttach, releaseQdisc: boolean): Promise<void> {
  const { ifindex, tc } = link;
  if (!tc || !ifindex) return;
  const netns = netnsPath(spec.netns);
  inNetns(netns, () => {
    try {
      tcDetach(ifindex, pointOf(spec), tc.handle, tc.priority);
    } catch (err) {
      if (!hasErrno(err, "ENOENT", "ENODEV")) throw err;
    }
  });
  if (releaseQdisc && tc.qdiscCreated && await tcFilterCount(spec.iface, netns) === 0) {
    inNetns(netns, () => {
      try {
        tcHookDestroy(ifindex, TcAttachPoint.INGRESS | TcAttachPoint.EGRESS);
      } catch (err) {
        if (!hasErrno(err, "ENOENT", "EINVAL")) throw err;
      }
    });
  }
}

/** tc hooks, as an attach kind. */
export const tc: HookKind<TcAttach> = {
  async attach(k, op) {
    if (tcPeers(op.hook).length) return await share(k, op);
    // Alone on the hook: a plain cls_bpf filter, no dispatcher.
    return { self: attachFilter(k, op.link, op.spec), peers: new Map() };
  },

  async move(k, op) {
    if (tcPeers(op.hook).length) return await share(k, op);
    return { self: moveFilter(k, op.link, op.spec), peers: new Map() };
  },

  async detach(k, { link, spec, hook, releaseQdisc, netnsGone }) {
    if (netnsGone) return new Map(); // the namespace is gone, and its filters with it
    const peers = tcPeers(hook);
    if (!link.tc || !peers.length) {
      await detachFilter(link, spec, releaseQdisc);
      return new Map();
    }
    let ifindex: number;
    try {
      ifindex = ifindexOf(spec.iface, spec.netns);
    } catch {
      return new Map();
    }
    const placement = await apply(k, { spec, ifindex, filter: link.tc, reload: hook.reload }, peers);
    return placed(peers, inFilter(ifindex, link.tc, placement));
  },

  alive(_k, link, spec) {
    const { ifindex, tc } = link;
    if (!tc || !ifindex) return false;
    try {
      const running = inNetns(
        netnsPath(spec.netns),
        () => tcQuery(ifindex, pointOf(spec), tc.handle, tc.priority),
      );
      // In a dispatcher: the shared filter is there, and so is the program's slot extension.
      if (link.slotProgramId) return running !== undefined && programInfo(link.slotProgramId) !== undefined;
      return running === link.programId;
    } catch {
      return false;
    }
  },

  chain(k, { spec, ifindex, members }) {
    const filter = members.find((m) => m.link.tc)?.link.tc;
    if (filter && members.length > 1) {
      const view = k.tc.chain(
        tcHook(spec, ifindex, filter),
        members.map((m) => chainMember(m, ALONE.reload)),
      );
      return { ...(view.dispatcherId ? { dispatcherId: view.dispatcherId } : {}), chain: view.entries };
    }
    const chain = members
      .filter((m) => m.link.attach.type === "tc")
      .sort((a, b) => (a.link.tc?.priority ?? 0) - (b.link.tc?.priority ?? 0))
      .map(({ link, program }, position) => {
        const own = hookSpec(link);
        return {
          position,
          programId: link.programId,
          name: program.name,
          priority: own.priority,
          proceedOn: [...own.proceedOn],
          managed: true,
          linkId: link.id,
        };
      });
    return { chain };
  },
};
