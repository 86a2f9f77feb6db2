/**
 * XDP on an interface: bpfd's programs there run in libxdp's dispatcher in priority order (or alone,
 * directly), beside other managers' programs; every change swaps the whole chain in atomically.
 *
 * @example
 * ```ts
 * const change = await xdp.attach(kernel, { link, spec, program, hook });
 * ```
 * @module
 */
import type { LinkRecord } from "../../model/schemas.ts";
import type { XdpPlacement } from "../chains/xdp.ts";
import { refused } from "../errors.ts";
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
  type KernelParts,
  knownIds,
  type NetworkAttach,
  placed,
} from "./kind.ts";

type XdpAttach = Extract<NetworkAttach, { type: "xdp" }>;

/** Makes the hook run `members` (bpfd's program ids on it: `known`); where each member runs now. */
async function apply(
  k: KernelParts,
  hook: { spec: XdpAttach; ifindex: number; reload: HookContext["reload"] },
  members: HookMember[],
  known: Set<number>,
): Promise<XdpPlacement> {
  const { spec, ifindex, reload } = hook;
  const xhook = { iface: spec.iface, ifindex, netns: netnsPath(spec.netns), mode: spec.mode };
  try {
    return await k.xdp.apply(xhook, members.map((m) => chainMember(m, reload)), known);
  } catch (err) {
    throw refused(err, `attach XDP (${spec.mode}) to ${spec.iface}`);
  }
}

/** Attach and move are one: the chain is rebuilt with the link in its place. */
async function place(k: KernelParts, { link, spec, program, hook }: HookOp<XdpAttach>): Promise<HookChange> {
  const ifindex = ifindexOf(spec.iface, spec.netns);
  const all: HookMember[] = [...hook.peers, { link, program }];
  const placement = await apply(
    k,
    { spec, ifindex, reload: hook.reload },
    all,
    knownIds(all.map((m) => m.link)),
  );
  const at = (l: LinkRecord): Attachment => ({ ifindex, slotProgramId: placement.get(l.id)?.slotProgramId });
  return { self: at(link), peers: placed(hook.peers, at) };
}

/** XDP hooks, as an attach kind. */
export const xdp: HookKind<XdpAttach> = {
  attach: place,
  move: place,

  async detach(k, { link, spec, hook, netnsGone }) {
    if (netnsGone) return new Map(); // the namespace is gone, and its XDP programs with it
    let ifindex: number;
    try {
      ifindex = ifindexOf(spec.iface, spec.netns);
    } catch {
      return new Map(); // the interface or namespace is gone, and its XDP programs with it
    }
    const known = knownIds([...hook.peers.map((m) => m.link), link]);
    const placement = await apply(k, { spec, ifindex, reload: hook.reload }, hook.peers, known);
    return placed(hook.peers, (l) => ({ ifindex, slotProgramId: placement.get(l.id)?.slotProgramId }));
  },

  alive(k, link, spec) {
    if (!link.ifindex) return false;
    try {
      const state = k.xdp.read({ ifindex: link.ifindex, netns: netnsPath(spec.netns) });
      if (state.kind === "program") return state.programId === link.programId;
      if (state.kind === "dispatcher") return state.slots.some((s) => s.programId === link.slotProgramId);
      return false;
    } catch {
      return false;
    }
  },

  chain(k, { spec, ifindex, members }) {
    const view = k.xdp.chain(
      { ifindex, netns: netnsPath(spec.netns) },
      members.map((m) => chainMember(m, ALONE.reload)),
    );
    return { ...(view.dispatcherId ? { dispatcherId: view.dispatcherId } : {}), chain: view.entries };
  },
};
