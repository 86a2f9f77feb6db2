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
  DISPATCHER_MAGIC,
  DISPATCHER_SLOTS,
  DISPATCHER_VERSION,
  DispatcherConfig,
} from "../../ffi/abi.ts";
import * as bpf from "../../ffi/libbpf.ts";
import { BpfdError } from "../../functions/_errors.ts";
import type { DispatcherKind } from "./order.ts";

const BUILD = new URL("../../bytecode/build/", import.meta.url).pathname;
const OBJECT = { xdp: `${BUILD}xdp_dispatcher.bpf.o`, tc: `${BUILD}tc_dispatcher.bpf.o` } as const;
const MAIN = { xdp: "xdp_dispatcher", tc: "tc_dispatcher" } as const;

/** One slot of a dispatcher's configuration. */
export interface SlotConfig {
  chainCallActions: number;
  runPrio: number;
  programFlags: number;
}

/** A dispatcher's configuration, as in its read-only data. */
export interface DispatcherState {
  magic: number;
  version: number;
  isXdpFrags: boolean;
  slots: SlotConfig[];
}

/** The 124 bytes of `struct xdp_dispatcher_config` for these slots. */
export function encodeConfig(slots: SlotConfig[], isXdpFrags = false): Uint8Array {
  if (slots.length > DISPATCHER_SLOTS) throw new Error(`a dispatcher has ${DISPATCHER_SLOTS} slots`);
  const bytes = new Uint8Array(DispatcherConfig.size);
  const dv = new DataView(bytes.buffer);
  dv.setUint8(DispatcherConfig.magic, DISPATCHER_MAGIC);
  dv.setUint8(DispatcherConfig.version, DISPATCHER_VERSION);
  dv.setUint8(DispatcherConfig.numProgsEnabled, slots.length);
  dv.setUint8(DispatcherConfig.isXdpFrags, isXdpFrags ? 1 : 0);
  slots.forEach((slot, i) => {
    dv.setUint32(DispatcherConfig.chainCallActions + 4 * i, slot.chainCallActions >>> 0, true);
    dv.setUint32(DispatcherConfig.runPrios + 4 * i, slot.runPrio >>> 0, true);
    dv.setUint32(DispatcherConfig.programFlags + 4 * i, slot.programFlags >>> 0, true);
  });
  return bytes;
}

/** Reads a configuration; undefined when the bytes are not a version-2 dispatcher's. */
export function decodeConfig(bytes: Uint8Array): DispatcherState | undefined {
  if (bytes.length !== DispatcherConfig.size) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint8(DispatcherConfig.magic);
  const version = dv.getUint8(DispatcherConfig.version);
  if (magic !== DISPATCHER_MAGIC || version !== DISPATCHER_VERSION) return undefined;
  const count = Math.min(dv.getUint8(DispatcherConfig.numProgsEnabled), DISPATCHER_SLOTS);
  const slots = Array.from({ length: count }, (_, i) => ({
    chainCallActions: dv.getUint32(DispatcherConfig.chainCallActions + 4 * i, true),
    runPrio: dv.getUint32(DispatcherConfig.runPrios + 4 * i, true),
    programFlags: dv.getUint32(DispatcherConfig.programFlags + 4 * i, true),
  }));
  return { magic, version, isXdpFrags: dv.getUint8(DispatcherConfig.isXdpFrags) !== 0, slots };
}

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
      return value ? decodeConfig(value) : undefined;
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
  const obj = bpf.BpfObject.open(OBJECT[kind]);
  try {
    for (const p of obj.programs()) obj.setAutoload(p.name, p.name === MAIN[kind]);
    const conf = obj.globals().find((g) => g.name === "conf");
    if (!conf) throw new Error(`${OBJECT[kind]} has no conf variable`);
    obj.setGlobal(conf, encodeConfig(slots));
    obj.load();
    const id = bpf.programInfo(obj.programFd(MAIN[kind])).id;
    return { fd: bpf.programFdById(id), id };
  } finally {
    obj.close();
  }
}

/** A TCX placeholder program (returns TC_ACT_UNSPEC: the next program runs); the caller closes the fd. */
export function loadPassOn(): HeldProgram {
  const obj = bpf.BpfObject.open(OBJECT.tc);
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
}

/** The error for kernels that refuse extension programs (this project's host: EPERM before verification). */
export function extensionsRefused(what: string, err: bpf.LibbpfError): BpfdError {
  return new BpfdError(
    409,
    "conflict",
    `${what}: the kernel does not allow extension (freplace) programs, which several programs on one hook ` +
      `need (${err.code} loading the extension); the programs already there keep running`,
    { errno: err.code, ...(err.verifierLog ? { verifierLog: err.verifierLog } : {}) },
  );
}

/** Loads `plan` as an extension of function `slot` of the dispatcher `dispatcherFd`. */
export function loadExtension(plan: ReloadPlan, dispatcherFd: number, slot: string): HeldProgram {
  const obj = bpf.BpfObject.open(plan.objectPath);
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
    const link = bpf.freplaceAttach(`attach program ${prog.id} to slot ${i}`, prog.fd, dispatcherFd, target);
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
