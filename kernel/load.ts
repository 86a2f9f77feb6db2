/**
 * Loading: opens an object file, loads the named programs with the given global data (reusing another
 * program's maps when asked), pins the programs and their maps, and unloads again. All or nothing: a
 * failure part-way removes the pins already made.
 *
 * @example
 * ```ts
 * const [loaded] = await load(pins, { objectPath, programs: [{ name: "xdp_counter", type: "xdp" }], globalData: {} });
 * ```
 * @module
 */
import { BpfAttachType, BpfProgType } from "../ffi/abi.ts";
import { hasErrno, LibbpfError } from "../ffi/errno.ts";
import * as bpf from "../ffi/libbpf.ts";
import { BpfObject } from "../ffi/object.ts";
import type { ProgramSpec, ProgramType } from "../model/schemas.ts";
import { KernelError, notFound, refused } from "./errors.ts";
import { type Pins, removePin } from "./pins.ts";

/** What loading one program produced. */
export interface LoadedProgram {
  id: number;
  name: string;
  tag: string;
  pinPath: string;
  mapPinPath: string;
  maps: Record<string, string>;
}

/** A load request, already validated. */
export interface LoadPlan {
  objectPath: string;
  /** The path to name in errors when `objectPath` is a checked `/proc/self/fd/N` (kernel/files.ts). */
  shownPath?: string;
  programs: ProgramSpec[];
  globalData: Record<string, Uint8Array>;
  /** Maps to reuse instead of creating: name → pin path (the map owner's maps). */
  sharedMaps?: Record<string, string>;
  /** The directory of the shared maps, reported as mapPinPath. */
  sharedMapDir?: string;
}

const LOAD_TYPES: Record<ProgramType, { progType: number; attachType?: number }> = {
  xdp: { progType: BpfProgType.XDP, attachType: BpfAttachType.XDP },
  tc: { progType: BpfProgType.SCHED_CLS },
  tcx: { progType: BpfProgType.SCHED_CLS },
  tracepoint: { progType: BpfProgType.TRACEPOINT },
  kprobe: { progType: BpfProgType.KPROBE },
  kretprobe: { progType: BpfProgType.KPROBE },
  uprobe: { progType: BpfProgType.KPROBE },
  uretprobe: { progType: BpfProgType.KPROBE },
  fentry: { progType: BpfProgType.TRACING, attachType: BpfAttachType.TRACE_FENTRY },
  fexit: { progType: BpfProgType.TRACING, attachType: BpfAttachType.TRACE_FEXIT },
  raw_tracepoint: { progType: BpfProgType.RAW_TRACEPOINT },
  tp_btf: { progType: BpfProgType.TRACING, attachType: BpfAttachType.TRACE_RAW_TP },
  perf_event: { progType: BpfProgType.PERF_EVENT },
};

const TRAMPOLINE_TYPES = new Set<ProgramType>(["fentry", "fexit"]);

/** Loads the named programs of an object file, pins them and their maps. All or nothing. */
export function load(pins: Pins, plan: LoadPlan): LoadedProgram[] {
  let obj: BpfObject;
  try {
    obj = BpfObject.open(plan.objectPath);
  } catch (err) {
    throw new KernelError(
      "invalid_object",
      "object",
      `${plan.shownPath ?? plan.objectPath} is not a BPF object file`,
      {
        ...(err instanceof LibbpfError ? { errno: err.code, libbpfLog: err.libbpfLog } : {}),
      },
    );
  }
  const pinned: string[] = [];
  try {
    configure(obj, plan);
    try {
      obj.load();
    } catch (err) {
      const trampoline = plan.programs.some((p) => TRAMPOLINE_TYPES.has(p.type));
      const hint = trampoline && hasErrno(err, "EPERM")
        ? "this kernel does not allow trampoline programs (fentry/fexit/freplace are refused before verification)"
        : undefined;
      throw refused(err, `load ${plan.programs.map((p) => p.name).join(", ")}`, hint);
    }
    try {
      return pinAll(pins, obj, plan, pinned);
    } catch (err) {
      throw refused(err, "pin the loaded programs and maps");
    }
  } catch (err) {
    for (const path of pinned.reverse()) removePin(path);
    throw err;
  } finally {
    obj.close();
  }
}

/** Unpins a program (the kernel frees it once no link holds it) and the map pins nobody else uses. */
export function unload(pins: Pins, programId: number, unusedMapPins: string[]): void {
  removePin(pins.program(programId));
  pins.removeMapPins(unusedMapPins);
}

/** Whether the program pinned for `id` is still that program. */
export function programAlive(pins: Pins, id: number): boolean {
  try {
    return bpf.withFd(bpf.objGet(pins.program(id)), (fd) => bpf.programInfo(fd).id === id);
  } catch {
    return false;
  }
}

function configure(obj: BpfObject, plan: LoadPlan): void {
  const inObject = new Map(obj.programs().map((p) => [p.name, p]));
  plan.programs.forEach((spec, at) => {
    const found = inObject.get(spec.name);
    if (!found) throw notFound("program", spec.name, { at, available: [...inObject.keys()].join(", ") });
    const want = LOAD_TYPES[spec.type];
    if (found.progType !== 0 && found.progType !== want.progType) {
      throw new KernelError(
        "invalid",
        "program_type",
        `program ${spec.name} is in section "${found.section}", which is not a ${spec.type} program`,
        { at },
      );
    }
  });
  const wanted = new Set(plan.programs.map((p) => p.name));
  for (const p of inObject.values()) obj.setAutoload(p.name, wanted.has(p.name));
  for (const spec of plan.programs) {
    const want = LOAD_TYPES[spec.type];
    obj.setProgramType(spec.name, want.progType, want.attachType);
    if (spec.fnName) obj.setAttachTarget(spec.name, spec.fnName);
  }
  const globals = obj.globals();
  for (const [name, value] of Object.entries(plan.globalData)) {
    const variable = globals.find((g) => g.name === name);
    if (!variable) {
      const known = globals.map((g) => g.name).join(", ") || "none";
      throw new KernelError(
        "invalid",
        "global",
        `no global variable ${name} in the object (it has: ${known})`,
        {
          at: name,
        },
      );
    }
    if (variable.size !== value.length) {
      throw new KernelError(
        "invalid",
        "global",
        `${name} is ${variable.size} bytes, the value is ${value.length}`,
        {
          at: name,
        },
      );
    }
    obj.setGlobal(variable, value);
  }
  for (const map of obj.maps()) {
    const shared = plan.sharedMaps?.[map.name];
    if (shared && !map.internal) bpf.withFd(bpf.objGet(shared), (fd) => obj.reuseMapFd(map.name, fd));
  }
}

function pinAll(
  pins: Pins,
  obj: BpfObject,
  plan: LoadPlan,
  pinned: string[],
): LoadedProgram[] {
  const infos = plan.programs.map((spec) => ({ spec, info: bpf.programInfo(obj.programFd(spec.name)) }));
  for (const { spec, info } of infos) {
    const path = pins.program(info.id);
    bpf.objPin(obj.programFd(spec.name), path);
    pinned.push(path);
  }
  // The group's own maps live under the first program's id; shared ones stay where their owner put them.
  const ownDir = `${pins.mapDir}/${infos[0].info.id}`;
  const maps: Record<string, string> = {};
  for (const map of obj.maps()) {
    const shared = plan.sharedMaps?.[map.name];
    if (shared && !map.internal) {
      maps[map.name] = shared;
      continue;
    }
    if (!pinned.includes(ownDir)) {
      Deno.mkdirSync(ownDir, { recursive: true });
      pinned.unshift(ownDir); // removed last, after the pins in it
      pins.share(ownDir, 0o750);
    }
    const path = `${ownDir}/${map.name.replaceAll(".", "_")}`; // bpffs refuses dots in names, as libbpf knows
    bpf.objPin(obj.mapFd(map.name), path);
    pinned.push(path);
    pins.share(path, 0o640);
    maps[map.name] = path;
  }
  const mapPinPath = plan.sharedMapDir ?? ownDir;
  return infos.map(({ spec, info }) => ({
    id: info.id,
    name: spec.name,
    tag: info.tag,
    pinPath: pins.program(info.id),
    mapPinPath,
    maps,
  }));
}
