/**
 * TCX chains (kernels >= 6.6): the kernel keeps the programs of an interface's ingress or egress hook
 * in order (mprog), and a new link can be placed before or after another link. bpfd places each of its
 * programs by priority relative to its own links only, so programs others attached (tc filters, other
 * TCX links) stay where they are; a program with nothing of bpfd's on the hook goes last. Every attach
 * states the hook revision it planned against: if the hook changed meanwhile (ESTALE), it plans again.
 *
 * The kernel runs the next program only when one returns TC_ACT_UNSPEC (TCX_NEXT); any other verdict
 * ends the chain — proceed-on on TCX is the kernel's rule, not bpfd's.
 *
 * mprog has no move, refuses one program twice on a hook, and keeps a link's place when its program is
 * replaced. A move therefore parks a placeholder (returns TC_ACT_UNSPEC) at the new place first, then
 * swaps the program out of its old link (for a second placeholder) and into the new one: two in-place
 * link updates back to back, which need no RCU grace period, so the program is out of the chain for
 * microseconds instead of the milliseconds a detach and a fresh attach take.
 *
 * @module
 */
import { BpfAttachFlags, BpfAttachType } from "../../ffi/abi.ts";
import { linkUpdate, mprogQuery, type MprogState, tcxLinkCreate } from "../../ffi/bpf.ts";
import { hasErrno } from "../../ffi/errno.ts";
import * as bpf from "../../ffi/libbpf.ts";
import { inNetns } from "../../ffi/libc.ts";
import { conflict } from "../errors.ts";
import { programName } from "../inspect.ts";
import type { ChainEntry } from "./chain.ts";
import { loadPassOn } from "./dispatcher.ts";
import { compareChainKeys, kernelName } from "./order.ts";

/** One interface's TCX ingress or egress hook. */
export interface TcxHook {
  iface: string;
  ifindex: number;
  netns?: string;
  direction: "ingress" | "egress";
}

/** One of bpfd's programs on the hook. */
export interface TcxMember {
  linkId: number;
  programId: number;
  name: string;
  priority: number;
  /** The kernel's link, once attached. */
  kernelLinkId?: number;
  /** Where the link is pinned. */
  linkPin: string;
}

const MAX_RETRIES = 20;

const attachTypeOf = (hook: TcxHook) =>
  hook.direction === "ingress" ? BpfAttachType.TCX_INGRESS : BpfAttachType.TCX_EGRESS;

const keyOf = (m: TcxMember) => ({
  priority: m.priority,
  name: kernelName(m.name),
  linkId: m.linkId,
  programId: m.programId,
});

export class TcxChains {
  /** The hook's programs, links and revision, in run order. */
  state(hook: TcxHook): MprogState {
    return inNetns(hook.netns, () => mprogQuery(hook.ifindex, attachTypeOf(hook)));
  }

  /** The hook's programs in run order; `members` tells which are bpfd's. */
  chain(hook: TcxHook, members: TcxMember[]): ChainEntry[] {
    const state = this.state(hook);
    return state.programIds.map((programId, position) => {
      const own = members.find((m) =>
        m.kernelLinkId !== undefined && m.kernelLinkId === state.linkIds[position]
      );
      return {
        position,
        programId,
        name: own?.name ?? programName(programId),
        priority: own?.priority ?? 0,
        proceedOn: ["unspec"],
        managed: own !== undefined,
        ...(own ? { linkId: own.linkId } : {}),
      };
    });
  }

  /**
   * Attaches `progFd` as `member` at its place among bpfd's `peers` on the hook (before the first peer
   * that sorts after it, else after the last peer, else last). Returns the new link's fd.
   */
  attach(hook: TcxHook, progFd: number, member: TcxMember, peers: TcxMember[]): number {
    const what = `attach TCX ${hook.direction} to ${hook.iface}`;
    for (let attempt = 0;; attempt++) {
      const state = this.state(hook);
      const present = new Set(state.linkIds);
      const ours = peers
        .filter((p) => p.linkId !== member.linkId && p.kernelLinkId && present.has(p.kernelLinkId))
        .sort((a, b) => compareChainKeys(keyOf(a), keyOf(b)));
      const next = ours.find((p) => compareChainKeys(keyOf(member), keyOf(p)) < 0);
      const anchor = next ?? ours.at(-1);
      let anchorFd: number | undefined;
      try {
        if (anchor) anchorFd = bpf.objGet(anchor.linkPin);
        const flags = anchor
          ? (next ? BpfAttachFlags.BEFORE : BpfAttachFlags.AFTER) | BpfAttachFlags.LINK
          : 0;
        return inNetns(
          hook.netns,
          () =>
            tcxLinkCreate(what, progFd, hook.ifindex, attachTypeOf(hook), {
              flags,
              relativeFd: anchorFd,
            }, state.revision),
        );
      } catch (err) {
        // ESTALE: the hook changed since the query; ENOENT/ERANGE: the anchor went away meanwhile.
        const raced = hasErrno(err, "ESTALE", "ENOENT", "ERANGE");
        if (!raced) throw err;
        if (attempt >= MAX_RETRIES) {
          throw conflict(
            "hook",
            `${hook.iface} ${hook.direction}: the TCX hook kept changing under bpfd; try again`,
          );
        }
      } finally {
        if (anchorFd !== undefined) bpf.closeFd(anchorFd);
      }
    }
  }

  /**
   * Moves `member` (its program `progFd`, running on link `oldLinkFd`) to its place among `peers` by
   * its (new) priority. Returns the fd of the link it runs on afterwards; the old link is detached.
   */
  move(hook: TcxHook, progFd: number, member: TcxMember, peers: TcxMember[], oldLinkFd: number): number {
    const parked = loadPassOn();
    const stand = loadPassOn();
    let newLink = -1;
    try {
      newLink = this.attach(hook, parked.fd, member, peers);
      linkUpdate(`take program ${member.programId} out of its place`, oldLinkFd, stand.fd, progFd);
      try {
        linkUpdate(`put program ${member.programId} in its new place`, newLink, progFd, parked.fd);
      } catch (err) {
        linkUpdate(`put program ${member.programId} back`, oldLinkFd, progFd, stand.fd);
        throw err;
      }
      detachQuietly(oldLinkFd);
      const moved = newLink;
      newLink = -1;
      return moved;
    } finally {
      if (newLink >= 0) {
        detachQuietly(newLink);
        bpf.closeFd(newLink);
      }
      bpf.closeFd(parked.fd);
      bpf.closeFd(stand.fd);
    }
  }
}

/** Detaches a link, ignoring one that is already gone. */
function detachQuietly(linkFd: number): void {
  try {
    bpf.linkDetach(linkFd);
  } catch { /* already detached */ }
}
