/**
 * XDP chains: several programs on one interface, as libxdp (xdp-tools) keeps them, so that bpfd and
 * `xdp-loader` share an interface. One program runs attached directly (no dispatcher cost); two to ten
 * run in a dispatcher whose slots hold the programs as freplace extensions, in priority order, each
 * slot's proceed-on in the dispatcher's config. The dispatcher is attached over netlink (as libxdp
 * does), its slot programs and links pinned under `<bpffs>/xdp/dispatch-<ifindex>-<dispatcher id>/`
 * (`prog<i>-prog`, `prog<i>-link`) while holding libxdp's lock on that directory.
 *
 * Every change is one atomic swap: the complete new chain is built beside the running one, then
 * replaces it with XDP_FLAGS_REPLACE and the expected old program, so traffic never sees a half-built
 * chain; if the hook changed meanwhile (another manager), the change starts over.
 *
 * @module
 */
import { DISPATCHER_SLOTS, XdpFlags } from "../../ffi/abi.ts";
import { hasErrno } from "../../ffi/errno.ts";
import * as bpf from "../../ffi/libbpf.ts";
import { inNetns, lockDirectory } from "../../ffi/libc.ts";
import { xdpAttach, xdpQuery } from "../../ffi/netlink.ts";
import { conflict } from "../errors.ts";
import { programName } from "../inspect.ts";
import type { ChainEntry, ChainMember } from "./chain.ts";
import {
  extensionsRefused,
  fillSlots,
  type HeldProgram,
  loadDispatcher,
  loadSlotExtension,
  readDispatcher,
  slotTargets,
} from "./dispatcher.ts";
import { compareChainKeys, kernelName, proceedOnMask, proceedOnNames } from "./order.ts";

/** libxdp's state directory: `$LIBXDP_BPFFS/xdp` (default /sys/fs/bpf/xdp), as libxdp finds it. */
export function libxdpDir(): string {
  return `${Deno.env.get("LIBXDP_BPFFS") ?? "/sys/fs/bpf"}/xdp`;
}

export type XdpMode = "native" | "skb" | "hw";

/** One interface's XDP hook. */
export interface XdpHook {
  iface: string;
  ifindex: number;
  /** Namespace path, when not the runtime's own. */
  netns?: string;
  mode: XdpMode;
}

/** A dispatcher slot as found on the interface. */
export interface XdpSlot {
  programId: number;
  name: string;
  runPrio: number;
  chainCallActions: number;
  programFlags: number;
}

/** What runs on an interface's XDP hook. */
export type XdpHookState =
  | { kind: "empty" }
  | { kind: "program"; programId: number; mode: XdpMode }
  | { kind: "dispatcher"; programId: number; mode: XdpMode; slots: XdpSlot[] };

/** The kernel side of each of bpfd's links after a change: its slot program, if in a dispatcher. */
export type XdpPlacement = Map<number, { slotProgramId?: number }>;

const MODE_FLAGS: Record<XdpMode, number> = {
  native: XdpFlags.DRV_MODE,
  skb: XdpFlags.SKB_MODE,
  hw: XdpFlags.HW_MODE,
};
const MAX_RETRIES = 10;
const MAIN_FUNCTION = "xdp_dispatcher";

/** Someone changed the hook between reading it and swapping: start over. */
class HookChanged extends Error {}

export class XdpChains {
  /** Set once the kernel refused an extension program: single programs then attach directly. */
  #extensionsRefused = false;

  constructor(readonly dir: string = libxdpDir()) {}

  #dispatchDir(ifindex: number, dispatcherId: number): string {
    return `${this.dir}/dispatch-${ifindex}-${dispatcherId}`;
  }

  #locked<T>(fn: () => T): T {
    Deno.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const release = lockDirectory(this.dir);
    try {
      return fn();
    } finally {
      release();
    }
  }

  /** What runs on the hook now. A dispatcher whose pins are missing is reported as a plain program. */
  read(hook: Pick<XdpHook, "ifindex" | "netns">): XdpHookState {
    const { programId, mode } = inNetns(hook.netns, () => xdpQuery(hook.ifindex));
    if (!programId || !mode) return { kind: "empty" };
    const conf = readDispatcher("xdp", programId);
    if (!conf) return { kind: "program", programId, mode };
    const dir = this.#dispatchDir(hook.ifindex, programId);
    const slots = this.#locked(() => {
      const found: XdpSlot[] = [];
      for (const [i, slot] of conf.slots.entries()) {
        try {
          const info = bpf.withFd(bpf.objGet(`${dir}/prog${i}-prog`), bpf.programInfo);
          found.push({ programId: info.id, name: info.name, ...slot });
        } catch {
          return undefined;
        }
      }
      return found;
    });
    if (!slots) return { kind: "program", programId, mode };
    return { kind: "dispatcher", programId, mode, slots };
  }

  /** The hook's programs in run order (`members` tells which are bpfd's), and its dispatcher. */
  chain(
    hook: Pick<XdpHook, "ifindex" | "netns">,
    members: ChainMember[],
  ): { dispatcherId?: number; entries: ChainEntry[] } {
    const state = this.read(hook);
    if (state.kind === "empty") return { entries: [] };
    if (state.kind === "program") {
      const own = members.find((m) => m.programId === state.programId);
      return {
        entries: [entryOf(0, state.programId, own, { name: own?.name ?? programName(state.programId) })],
      };
    }
    const entries = state.slots.map((slot, i) => {
      const own = members.find((m) => m.slotProgramId === slot.programId);
      return entryOf(i, own ? own.programId : slot.programId, own, {
        name: own?.name ?? slot.name,
        priority: slot.runPrio,
        proceedOn: proceedOnNames("xdp", slot.chainCallActions),
        slotProgramId: slot.programId,
      });
    });
    return { dispatcherId: state.programId, entries };
  }

  /**
   * Makes the hook run exactly bpfd's `members` (in priority order) beside the programs of others that
   * are in its dispatcher. `known` holds every program id of bpfd's on this hook, also of links being
   * removed, so that they are dropped rather than kept as someone else's. Returns where each member runs.
   */
  async apply(hook: XdpHook, members: ChainMember[], known: Set<number>): Promise<XdpPlacement> {
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#applyOnce(hook, members, known);
      } catch (err) {
        if (!(err instanceof HookChanged) || attempt >= MAX_RETRIES) {
          if (err instanceof HookChanged) {
            throw conflict("hook", `${hook.iface}: the XDP hook kept changing under bpfd; try again`);
          }
          throw err;
        }
        await new Promise((r) => setTimeout(r, 1 << attempt));
      }
    }
  }

  async #applyOnce(hook: XdpHook, members: ChainMember[], known: Set<number>): Promise<XdpPlacement> {
    const state = this.read(hook);
    if (state.kind === "program" && !known.has(state.programId)) {
      if (members.length === 0) return new Map();
      throw conflict(
        "hook",
        `${hook.iface} already has an XDP program that bpfd does not own (id ${state.programId}, not in a ` +
          `libxdp dispatcher); detach it first`,
        { iface: hook.iface, programId: state.programId },
      );
    }
    if (state.kind !== "empty" && members.length > 0 && state.mode !== hook.mode) {
      throw conflict(
        "hook",
        `${hook.iface} runs its XDP programs in ${state.mode} mode; every program on one interface shares it`,
        { iface: hook.iface, mode: state.mode },
      );
    }
    const foreign = state.kind === "dispatcher" ? state.slots.filter((s) => !known.has(s.programId)) : [];
    type Planned = { member: ChainMember; slot?: undefined } | { slot: XdpSlot; member?: undefined };
    const planned: Planned[] = [
      ...members.map((member) => ({ member })),
      ...foreign.map((slot) => ({ slot })),
    ];
    const keyOf = (p: Planned) =>
      p.member
        ? {
          priority: p.member.priority,
          name: kernelName(p.member.name),
          linkId: p.member.linkId,
          programId: p.member.programId,
        }
        : { priority: p.slot.runPrio, name: p.slot.name, programId: p.slot.programId };
    planned.sort((a, b) => compareChainKeys(keyOf(a), keyOf(b)));
    if (planned.length > DISPATCHER_SLOTS) {
      throw conflict(
        "hook",
        `${hook.iface} already runs ${DISPATCHER_SLOTS} XDP programs, as many as a dispatcher has slots`,
        { iface: hook.iface, slots: DISPATCHER_SLOTS },
      );
    }
    const oldDir = state.kind === "dispatcher" ? this.#dispatchDir(hook.ifindex, state.programId) : undefined;
    const placement: XdpPlacement = new Map(members.map((m) => [m.linkId, {}]));

    if (planned.length === 0) {
      if (state.kind !== "empty") this.#swap(hook, -1, state);
    } else if (planned.length === 1 && planned[0].member) {
      // libxdp's trick: alone, the program replaces the dispatcher's main function, so it costs what a
      // directly attached program costs and xdp-loader still finds a dispatcher to join. Where the
      // kernel refuses extensions, the program is attached directly.
      const only = planned[0].member;
      let inDispatcher = false;
      if (!this.#extensionsRefused) {
        try {
          await this.#swapInDispatcher(hook, state, planned, placement);
          inDispatcher = true;
        } catch (err) {
          if (!extensionsRefused(err)) throw err;
          this.#extensionsRefused = true;
        }
      }
      if (!inDispatcher && !(state.kind === "program" && state.programId === only.programId)) {
        bpf.withFd(bpf.programFdById(only.programId), (fd) => this.#swap(hook, fd, state));
      }
    } else {
      await this.#swapInDispatcher(hook, state, planned, placement);
    }
    if (oldDir) this.#unpinDir(oldDir);
    return placement;
  }

  async #swapInDispatcher(
    hook: XdpHook,
    state: XdpHookState,
    planned: Array<{ member?: ChainMember; slot?: XdpSlot }>,
    placement: XdpPlacement,
  ): Promise<void> {
    const slots = planned.map((p) =>
      p.member
        ? {
          chainCallActions: proceedOnMask("xdp", p.member.proceedOn),
          runPrio: p.member.priority,
          programFlags: 0,
        }
        : {
          chainCallActions: p.slot!.chainCallActions,
          runPrio: p.slot!.runPrio,
          programFlags: p.slot!.programFlags,
        }
    );
    const dispatcher = loadDispatcher("xdp", slots);
    const held: number[] = [dispatcher.fd];
    const dir = this.#dispatchDir(hook.ifindex, dispatcher.id);
    let pinned = false;
    try {
      // One program replaces the whole main function (as libxdp does); several fill prog0..prog<n-1>.
      const functions = planned.length === 1 ? [MAIN_FUNCTION] : planned.map((_, i) => `prog${i}`);
      const targets = planned.length === 1
        ? [bpf.btfFuncId(dispatcher.fd, MAIN_FUNCTION)]
        : slotTargets(dispatcher.fd, planned.length);
      const filled = await fillSlots(
        dispatcher.fd,
        targets,
        (i) => this.#slotProgram(hook, planned[i], dispatcher.fd, functions[i]),
        held,
      );
      planned.forEach((p, i) => {
        if (p.member) placement.set(p.member.linkId, { slotProgramId: filled[i].prog.id });
      });
      this.#locked(() => {
        Deno.mkdirSync(dir, { mode: 0o700 });
        pinned = true;
        filled.forEach(({ prog, link }, i) => {
          bpf.objPin(link, `${dir}/prog${i}-link`);
          bpf.objPin(prog.fd, `${dir}/prog${i}-prog`);
        });
      });
      this.#swap(hook, dispatcher.fd, state);
      pinned = false; // the new dispatcher runs: its pins are the hook's state now
    } finally {
      if (pinned) this.#unpinDir(dir);
      for (const fd of held) bpf.closeFd(fd);
    }
  }

  /** The extension for slot `i`: the one the program already has, or a fresh load of it. */
  async #slotProgram(
    hook: XdpHook,
    p: { member?: ChainMember; slot?: XdpSlot },
    dispatcherFd: number,
    fn: string,
  ): Promise<HeldProgram> {
    const existing = p.member ? p.member.slotProgramId : p.slot!.programId;
    if (existing) {
      try {
        return { fd: bpf.programFdById(existing), id: existing };
      } catch {
        if (!p.member) throw new HookChanged(); // someone else's program went away meanwhile
      }
    }
    return await loadSlotExtension(p.member!, { dispatcherFd, fn }, {
      hook: hook.iface,
      kind: "an XDP dispatcher slot",
    });
  }

  /** Replaces what runs on the hook (`state`) with `progFd` (-1: nothing), atomically. */
  #swap(hook: XdpHook, progFd: number, state: XdpHookState): void {
    const flags = MODE_FLAGS[hook.mode] |
      (state.kind === "empty" ? XdpFlags.UPDATE_IF_NOEXIST : XdpFlags.REPLACE);
    let oldFd: number | undefined;
    if (state.kind !== "empty") {
      try {
        oldFd = bpf.programFdById(state.programId);
      } catch {
        throw new HookChanged();
      }
    }
    try {
      inNetns(
        hook.netns,
        () => xdpAttach(`attach XDP to ${hook.iface}`, hook.ifindex, progFd, flags, oldFd),
      );
    } catch (err) {
      if (hasErrno(err, "EEXIST")) throw new HookChanged();
      if (hasErrno(err, "EBUSY")) {
        throw conflict(
          "hook",
          `${hook.iface} already has an XDP program attached through a BPF link that bpfd does not own`,
          { errno: err.code, iface: hook.iface },
        );
      }
      throw err;
    } finally {
      if (oldFd !== undefined) bpf.closeFd(oldFd);
    }
  }

  /** Removes a dispatcher's pin directory (its slot links go with the pins once it is detached). */
  #unpinDir(dir: string): void {
    this.#locked(() => {
      try {
        for (const entry of Deno.readDirSync(dir)) Deno.removeSync(`${dir}/${entry.name}`);
        Deno.removeSync(dir);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    });
  }
}

function entryOf(
  position: number,
  programId: number,
  own: ChainMember | undefined,
  seen: { name: string; priority?: number; proceedOn?: string[]; slotProgramId?: number },
): ChainEntry {
  return {
    position,
    programId,
    name: seen.name,
    priority: own?.priority ?? seen.priority ?? 0,
    proceedOn: own ? [...own.proceedOn] : seen.proceedOn ?? [],
    managed: own !== undefined,
    ...(own ? { linkId: own.linkId } : {}),
    ...(seen.slotProgramId ? { slotProgramId: seen.slotProgramId } : {}),
  };
}
