/**
 * TCX on an interface's ingress or egress (kernels >= 6.6): the kernel orders the links; bpfd places
 * each of its programs by priority relative to its own links and pins the link.
 *
 * @example
 * ```ts
 * const change = await tcx.attach(kernel, { link, spec, program, hook });
 * ```
 * @module
 */
import { hasErrno } from "../../ffi/errno.ts";
import * as bpf from "../../ffi/libbpf.ts";
import type { TcxMember } from "../chains/tcx.ts";
import { refused } from "../errors.ts";
import { ifindexOf, netnsPath } from "../netns.ts";
import { removePin } from "../pins.ts";
import {
  type HookChange,
  type HookKind,
  type HookMember,
  type HookOp,
  hookSpec,
  type KernelParts,
  type NetworkAttach,
} from "./kind.ts";

type TcxAttach = Extract<NetworkAttach, { type: "tcx" }>;

function member(k: KernelParts, { link, program }: HookMember): TcxMember {
  return {
    linkId: link.id,
    programId: link.programId,
    name: program.name,
    priority: hookSpec(link).priority,
    kernelLinkId: link.kernelLinkId,
    linkPin: k.pins.link(link.id),
  };
}

/** Attaches (or, with `moving`, moves) the link among bpfd's peers and pins the new link. */
function place(k: KernelParts, op: HookOp<TcxAttach>, moving: boolean): HookChange {
  const { link, spec, program, hook } = op;
  const ifindex = ifindexOf(spec.iface, spec.netns);
  const thook = { iface: spec.iface, ifindex, netns: netnsPath(spec.netns), direction: spec.direction };
  const self = member(k, { link, program });
  const peers = hook.peers.map((m) => member(k, m));
  const progFd = bpf.objGet(k.pins.program(link.programId));
  let linkFd: number;
  try {
    linkFd = moving
      ? bpf.withFd(bpf.objGet(k.pins.link(link.id)), (old) => k.tcx.move(thook, progFd, self, peers, old))
      : k.tcx.attach(thook, progFd, self, peers);
  } catch (err) {
    const hint = hasErrno(err, "EINVAL") ? "kernels before 6.6 have no TCX; attach as type tc" : undefined;
    throw refused(err, `attach TCX ${spec.direction} to ${spec.iface}`, hint);
  } finally {
    bpf.closeFd(progFd);
  }
  if (moving) removePin(k.pins.link(link.id));
  return { self: k.pins.pinLink(link.id, linkFd, { ifindex }), peers: new Map() };
}

/** TCX hooks, as an attach kind. */
export const tcx: HookKind<TcxAttach> = {
  attach: (k, op) => place(k, op, false),
  move: (k, op) => place(k, op, true),

  detach(k, { link }) {
    k.pins.releaseLink(link.id);
    return new Map();
  },

  alive: (k, link) => k.pins.linkAlive(link.id, link.kernelLinkId),

  chain(k, { spec, ifindex, members }) {
    const hook = { iface: spec.iface, ifindex, netns: netnsPath(spec.netns), direction: spec.direction };
    return { chain: k.tcx.chain(hook, members.map((m) => member(k, m))) };
  },
};
