/**
 * Dispatcher programs (bytecode/xdp_dispatcher.bpf.c, bytecode/tc_dispatcher.bpf.c) and the extension
 * programs that fill their slots. A dispatcher is loaded with its configuration in read-only data, so
 * every change of a chain loads a new one; user programs are loaded again as freplace extensions
 * (BPF_PROG_TYPE_EXT) that reuse the program's pinned maps and global data, and an extension is moved to
 * the next dispatcher without reloading (its id and maps stay).
 *
 * @module
 */
import {
  BpfProgType,
  decodeDispatcherConfig,
  DispatcherConfig,
  type DispatcherState,
  encodeDispatcherConfig,
  type SlotConfig,
} from "../../ffi/abi.ts";
import { freplaceAttach } from "../../ffi/bpf.ts";
import { hasErrno, LibbpfError } from "../../ffi/errno.ts";
import * as bpf from "../../ffi/libbpf.ts";
import { BpfObject } from "../../ffi/object.ts";
import { conflict, KernelError } from "../errors.ts";
import type { DispatcherKind } from "./order.ts";

const BUILD = new URL("../../bytecode/build/", import.meta.url).pathname;
const OBJECT = { xdp: `${BUILD}xdp_dispatcher.bpf.o`, tc: `${BUILD}tc_dispatcher.bpf.o` } as const;
const MAIN = { xdp: "xdp_dispatcher", tc: "tc_dispatcher" } as const;

/** If program `id` is a dispatcher of this kind, its configuration (read from its only map). */
export function readDispatcher(kind: DispatcherKind, id: number): DispatcherState | undefined {
  let info: bpf.ProgramInfo;
  try {
    info = bpf.withFd(bpf.programFdById(id), bpf.programInfo);
  } catch {
    return undefined;
  }
  if (info.name !== MAIN[kind] || info.mapIds.length !== 1) return undefined;
  try {
    return bpf.withFd(bpf.mapFdById(info.mapIds[0]), (fd) => {
      const map = bpf.mapInfo(fd);
      if (map.keySize !== 4 || map.maxEntries !== 1 || map.valueSize !== DispatcherConfig.size) {
        return undefined;
      }
      const value = bpf.mapLookup(fd, new Uint8Array(4), map.valueSize);
      return value ? decodeDispatcherConfig(value) : undefined;
    });
  } catch {
    return undefined;
  }
}

/** A loaded program held by an fd the caller owns. */
export interface HeldProgram {
  fd: number;
  id: number;
}

/** Loads a dispatcher with these slots; the caller closes the fd (attachments keep the program). */
export function loadDispatcher(kind: DispatcherKind, slots: SlotConfig[]): HeldProgram {
  const obj = BpfObject.open(OBJECT[kind]);
  try {
    for (const p of obj.programs()) obj.setAutoload(p.name, p.name === MAIN[kind]);
    const conf = obj.globals().find((g) => g.name === "conf");
    if (!conf) throw new Error(`${OBJECT[kind]} has no conf variable`);
    obj.setGlobal(conf, encodeDispatcherConfig(slots));
    obj.load();
    const id = bpf.programInfo(obj.programFd(MAIN[kind])).id;
    return { fd: bpf.programFdById(id), id };
  } finally {
    obj.close();
  }
}

/** A TCX placeholder program (returns TC_ACT_UNSPEC: the next program runs); the caller closes the fd. */
export function loadPassOn(): HeldProgram {
  const obj = BpfObject.open(OBJECT.tc);
  try {
    for (const p of obj.programs()) obj.setAutoload(p.name, p.name === "tc_pass_on");
    obj.load();
    const id = bpf.programInfo(obj.programFd("tc_pass_on")).id;
    return { fd: bpf.programFdById(id), id };
  } finally {
    obj.close();
  }
}

/** How to load a program again, as an extension: its object file, name, global data and pinned maps. */
export interface ReloadPlan {
  objectPath: string;
  name: string;
  globalData: Record<string, Uint8Array>;
  /** Map name → pin path of the maps the program uses (reused, so counters are shared). */
  maps: Record<string, string>;
  /** Releases what the plan holds open (the checked object file), once the extension is loaded. */
  close?(): void;
}

/**
 * Loads `plan` as the extension for a dispatcher slot (see {@link loadExtension}); a kernel that refuses
 * extension programs (this project's host: EPERM before verification) is a conflict on the hook
 * (`where` says which and why the program cannot join), any other refusal is kernel_refused.
 */
export async function loadSlotExtension(
  member: { programId: number; name: string; reload(): Promise<ReloadPlan> },
  target: { dispatcherFd: number; fn: string },
  where: { hook: string; kind: string; hint?: string },
): Promise<HeldProgram> {
  let plan: ReloadPlan | undefined;
  try {
    plan = await member.reload();
    return loadExtension(plan, target.dispatcherFd, target.fn);
  } catch (err) {
    if (err instanceof LibbpfError && hasErrno(err, "EPERM") && !err.verifierLog) {
      throw conflict(
        "hook",
        `${where.hook}: cannot run program ${member.programId} beside the others${where.hint ?? ""}: the ` +
          `kernel does not allow extension (freplace) programs, which several programs on one hook need ` +
          `(${err.code} loading the extension); the programs already there keep running`,
        { errno: err.code },
        { cause: err },
      );
    }
    if (err instanceof LibbpfError) {
      throw new KernelError(
        "kernel_refused",
        "program",
        `the kernel refused program ${member.programId} (${member.name}) as an extension for ${where.kind}: ` +
          err.code,
        { errno: err.code, ...(err.verifierLog ? { verifierLog: err.verifierLog } : {}) },
        { cause: err },
      );
    }
    throw err;
  } finally {
    plan?.close?.();
  }
}

/** Whether `err` says the kernel refuses extension programs (EPERM before verification). */
export function extensionsRefused(err: unknown): boolean {
  return err instanceof KernelError && hasErrno(err.cause, "EPERM");
}

/** Loads `plan` as an extension of function `slot` of the dispatcher `dispatcherFd`. */
export function loadExtension(plan: ReloadPlan, dispatcherFd: number, slot: string): HeldProgram {
  const obj = BpfObject.open(plan.objectPath);
  try {
    for (const p of obj.programs()) obj.setAutoload(p.name, p.name === plan.name);
    obj.setProgramType(plan.name, BpfProgType.EXT, 0);
    obj.setAttachProgram(plan.name, dispatcherFd, slot);
    const globals = obj.globals();
    for (const [name, value] of Object.entries(plan.globalData)) {
      const variable = globals.find((g) => g.name === name);
      if (variable) obj.setGlobal(variable, value);
    }
    for (const map of obj.maps()) {
      const pin = plan.maps[map.name];
      if (pin && !map.internal) bpf.withFd(bpf.objGet(pin), (fd) => obj.reuseMapFd(map.name, fd));
    }
    obj.load();
    const id = bpf.programInfo(obj.programFd(plan.name)).id;
    return { fd: bpf.programFdById(id), id };
  } finally {
    obj.close();
  }
}

/** An extension in its dispatcher slot: the program and its freplace link (fds the caller owns). */
export interface FilledSlot {
  prog: HeldProgram;
  link: number;
}

/**
 * Loads `load(i)` for each slot i and attaches it at `targets[i]` of the dispatcher. Every fd goes into
 * `held` as soon as it exists, so the caller can close them all whatever fails.
 */
export async function fillSlots(
  dispatcherFd: number,
  targets: number[],
  load: (slot: number) => Promise<HeldProgram>,
  held: number[],
): Promise<FilledSlot[]> {
  const filled: FilledSlot[] = [];
  for (const [i, target] of targets.entries()) {
    const prog = await load(i);
    held.push(prog.fd);
    const link = freplaceAttach(`attach program ${prog.id} to slot ${i}`, prog.fd, dispatcherFd, target);
    held.push(link);
    filled.push({ prog, link });
  }
  return filled;
}

/** The BTF ids of prog0..prog{n-1} in a loaded dispatcher (freplace targets). */
export function slotTargets(dispatcherFd: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => {
    const id = bpf.btfFuncId(dispatcherFd, `prog${i}`);
    if (!id) throw new Error(`dispatcher has no function prog${i} in its BTF`);
    return id;
  });
}
