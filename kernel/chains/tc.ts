/**
 * tc chains for kernels without TCX: several of bpfd's programs on one interface's ingress or egress run
 * in one cls_bpf filter (direct action) on the clsact qdisc. Alone, a program is that filter's program;
 * two to ten run in a tc dispatcher (bytecode/tc_dispatcher.bpf.c) whose slots hold them as freplace
 * extensions, in priority order, with proceed-on in tc verdicts (default pipe, dispatcher_return). Every
 * change builds the complete new chain, then replaces the filter's program in one netlink request
 * (cls_bpf swaps it under RCU), so traffic never sees a half-built chain. Other filters on the qdisc —
 * anyone's — are never touched. Slot programs and links are pinned under
 * `<bpffs>/tc-dispatchers/<ifindex>-<direction>-<dispatcher id>/prog<i>-{prog,link}`.
 *
 * @module
 */
import { DISPATCHER_SLOTS, TcAttachPoint } from "../../ffi/abi.ts";
import * as bpf from "../../ffi/libbpf.ts";
import { inNetns } from "../../ffi/libc.ts";
import { tcAttach, tcQuery } from "../../ffi/netlink.ts";
import { conflict } from "../errors.ts";
import type { ChainEntry, ChainMember } from "./chain.ts";
import {
  fillSlots,
  type HeldProgram,
  loadDispatcher,
  loadSlotExtension,
  readDispatcher,
  slotTargets,
} from "./dispatcher.ts";
import { compareChainKeys, kernelName, proceedOnMask } from "./order.ts";

/** One interface's tc ingress or egress hook, and the cls_bpf filter bpfd runs its chain in. */
export interface TcHook {
  iface: string;
  ifindex: number;
  netns?: string;
  direction: "ingress" | "egress";
  /** The filter (handle, priority) that runs the chain. */
  filter: { handle: number; priority: number };
}

/** Where each of bpfd's links runs after a change: its slot program, if in a dispatcher. */
export type TcPlacement = Map<number, { slotProgramId?: number }>;

export class TcChains {
  constructor(
    /** Where dispatcher slot pins go. */
    readonly dir: string,
    /** Where bpfd pinned a program (run directly when it is alone on the hook). */
    readonly progPin: (programId: number) => string,
  ) {}

  #point(hook: TcHook): number {
    return hook.direction === "ingress" ? TcAttachPoint.INGRESS : TcAttachPoint.EGRESS;
  }

  #dispatchDir(hook: TcHook, dispatcherId: number): string {
    return `${this.dir}/${hook.ifindex}-${hook.direction}-${dispatcherId}`;
  }

  /** The program the hook's filter runs now (undefined when the filter is gone). */
  running(hook: TcHook): number | undefined {
    return inNetns(
      hook.netns,
      () => tcQuery(hook.ifindex, this.#point(hook), hook.filter.handle, hook.filter.priority),
    );
  }

  /** The slot programs of the dispatcher the filter runs, or undefined when it runs a program directly. */
  slots(hook: TcHook): { dispatcherId: number; programIds: number[] } | undefined {
    const id = this.running(hook);
    if (!id) return undefined;
    const conf = readDispatcher("tc", id);
    if (!conf) return undefined;
    const dir = this.#dispatchDir(hook, id);
    const programIds = conf.slots.map((_, i) => {
      try {
        return bpf.withFd(bpf.objGet(`${dir}/prog${i}-prog`), bpf.programInfo).id;
      } catch {
        return 0;
      }
    });
    return { dispatcherId: id, programIds };
  }

  /** The chain in run order. */
  chain(hook: TcHook, members: ChainMember[]): { dispatcherId?: number; entries: ChainEntry[] } {
    const slots = this.slots(hook);
    const sorted = [...members].sort((a, b) => compareChainKeys(keyOf(a), keyOf(b)));
    const entries = sorted.map((m, position) => ({
      position,
      programId: m.programId,
      name: m.name,
      priority: m.priority,
      proceedOn: [...m.proceedOn],
      managed: true,
      linkId: m.linkId,
      ...(slots ? { slotProgramId: slots.programIds[position] } : {}),
    }));
    return { ...(slots ? { dispatcherId: slots.dispatcherId } : {}), entries };
  }

  /**
   * Makes the hook's filter run exactly `members` (at least one) in priority order: alone, a member's
   * program directly; several, a new dispatcher. One atomic replace of the filter's program.
   */
  async apply(hook: TcHook, members: ChainMember[]): Promise<TcPlacement> {
    const sorted = [...members].sort((a, b) => compareChainKeys(keyOf(a), keyOf(b)));
    if (sorted.length > DISPATCHER_SLOTS) {
      throw conflict(
        "hook",
        `${hook.iface} ${hook.direction} already runs ${DISPATCHER_SLOTS} tc programs, as many as a dispatcher has slots`,
        { iface: hook.iface, slots: DISPATCHER_SLOTS },
      );
    }
    const before = this.slots(hook);
    const placement: TcPlacement = new Map(members.map((m) => [m.linkId, {}]));
    if (sorted.length === 1) {
      bpf.withFd(bpf.objGet(this.progPin(sorted[0].programId)), (fd) => this.#replace(hook, fd));
    } else {
      await this.#replaceWithDispatcher(hook, sorted, placement);
    }
    if (before) this.#unpinDir(this.#dispatchDir(hook, before.dispatcherId));
    return placement;
  }

  async #replaceWithDispatcher(hook: TcHook, sorted: ChainMember[], placement: TcPlacement): Promise<void> {
    const dispatcher = loadDispatcher(
      "tc",
      sorted.map((m) => ({
        chainCallActions: proceedOnMask("tc", m.proceedOn),
        runPrio: m.priority,
        programFlags: 0,
      })),
    );
    const held: number[] = [dispatcher.fd];
    const dir = this.#dispatchDir(hook, dispatcher.id);
    let pinned = false;
    try {
      const filled = await fillSlots(
        dispatcher.fd,
        slotTargets(dispatcher.fd, sorted.length),
        (i) => slotProgram(hook, sorted[i], dispatcher.fd, i),
        held,
      );
      sorted.forEach((member, i) => placement.set(member.linkId, { slotProgramId: filled[i].prog.id }));
      Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
      pinned = true;
      filled.forEach(({ prog, link }, i) => {
        bpf.objPin(link, `${dir}/prog${i}-link`);
        bpf.objPin(prog.fd, `${dir}/prog${i}-prog`);
      });
      this.#replace(hook, dispatcher.fd);
      pinned = false;
    } finally {
      if (pinned) this.#unpinDir(dir);
      for (const fd of held) bpf.closeFd(fd);
    }
  }

  /** Replaces the program of bpfd's filter in place. */
  #replace(hook: TcHook, progFd: number): void {
    inNetns(
      hook.netns,
      () => tcAttach(hook.ifindex, this.#point(hook), progFd, hook.filter.handle, hook.filter.priority, true),
    );
  }

  #unpinDir(dir: string): void {
    try {
      for (const entry of Deno.readDirSync(dir)) Deno.removeSync(`${dir}/${entry.name}`);
      Deno.removeSync(dir);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
}

const keyOf = (m: ChainMember) => ({
  priority: m.priority,
  name: kernelName(m.name),
  linkId: m.linkId,
  programId: m.programId,
});

async function slotProgram(
  hook: TcHook,
  member: ChainMember,
  dispatcherFd: number,
  i: number,
): Promise<HeldProgram> {
  if (member.slotProgramId) {
    try {
      return { fd: bpf.programFdById(member.slotProgramId), id: member.slotProgramId };
    } catch { /* gone: load it again */ }
  }
  return await loadSlotExtension(member, { dispatcherFd, fn: `prog${i}` }, {
    hook: `${hook.iface} ${hook.direction}`,
    kind: "a tc dispatcher slot",
    hint: " (on a kernel with TCX, attach them as type tcx to order them natively)",
  });
}
