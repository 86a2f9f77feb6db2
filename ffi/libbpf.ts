/**
 * Typed bindings to Debian's libbpf 1.1.2: the only module that speaks to libbpf. Symbols are bound on
 * first use. Every failure throws a {@link LibbpfError} carrying the operation, the errno name, libbpf's
 * own messages and, for loads the kernel refused, the verifier log.
 *
 * @example
 * ```ts
 * import { BpfObject } from "./ffi/libbpf.ts";
 * const obj = BpfObject.open("bytecode/build/xdp_counter.bpf.o");
 * try {
 *   obj.load();
 *   console.log(obj.programFd("xdp_counter"));
 * } finally {
 *   obj.close();
 * }
 * ```
 * @module
 */
import {
  AttrLinkCreate,
  AttrLinkUpdate,
  AttrProgQuery,
  BPF_ATTR_SIZE,
  BPF_F_RDONLY,
  BPF_TC_F_REPLACE,
  BpfCmd,
  BTF_KIND_DATASEC,
  BTF_KIND_FUNC,
  BtfType,
  BtfVarSecinfo,
  errnoName,
  LINK_TYPE_NAMES,
  LinkCreateOpts,
  LinkInfo,
  LOCK_EX,
  LOCK_UN,
  MapInfo,
  O_CLOEXEC,
  O_DIRECTORY,
  O_RDONLY,
  ObjGetOpts,
  PROG_TYPE_NAMES,
  ProgInfo,
  SYS_bpf,
  TcHook,
  TcOpts,
  TestRunOpts,
  XdpAttached,
  XdpAttachOpts,
  XdpQueryOpts,
} from "./abi.ts";
import { closeFd, vformat } from "./libc.ts";
import { cstring, fixedString, lazyLibrary, readCString } from "./lazy.ts";

const lib = lazyLibrary("libbpf.so.1", {
  libbpf_set_print: { parameters: ["function"], result: "pointer" },
  libbpf_get_error: { parameters: ["pointer"], result: "i64" },
  bpf_object__open_file: { parameters: ["buffer", "pointer"], result: "pointer" },
  bpf_object__load: { parameters: ["pointer"], result: "i32" },
  bpf_object__close: { parameters: ["pointer"], result: "void" },
  bpf_object__btf: { parameters: ["pointer"], result: "pointer" },
  bpf_object__next_program: { parameters: ["pointer", "pointer"], result: "pointer" },
  bpf_object__next_map: { parameters: ["pointer", "pointer"], result: "pointer" },
  bpf_program__name: { parameters: ["pointer"], result: "pointer" },
  bpf_program__section_name: { parameters: ["pointer"], result: "pointer" },
  bpf_program__type: { parameters: ["pointer"], result: "i32" },
  bpf_program__set_type: { parameters: ["pointer", "i32"], result: "i32" },
  bpf_program__expected_attach_type: { parameters: ["pointer"], result: "i32" },
  bpf_program__set_expected_attach_type: { parameters: ["pointer", "i32"], result: "i32" },
  bpf_program__set_autoload: { parameters: ["pointer", "bool"], result: "i32" },
  bpf_program__set_attach_target: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  bpf_program__fd: { parameters: ["pointer"], result: "i32" },
  bpf_map__name: { parameters: ["pointer"], result: "pointer" },
  bpf_map__type: { parameters: ["pointer"], result: "i32" },
  bpf_map__is_internal: { parameters: ["pointer"], result: "bool" },
  bpf_map__fd: { parameters: ["pointer"], result: "i32" },
  bpf_map__reuse_fd: { parameters: ["pointer", "i32"], result: "i32" },
  bpf_map__initial_value: { parameters: ["pointer", "buffer"], result: "pointer" },
  bpf_map__set_initial_value: { parameters: ["pointer", "buffer", "usize"], result: "i32" },
  btf__find_by_name_kind: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  btf__type_by_id: { parameters: ["pointer", "u32"], result: "pointer" },
  btf__name_by_offset: { parameters: ["pointer", "u32"], result: "pointer" },
  bpf_obj_pin: { parameters: ["i32", "buffer"], result: "i32" },
  bpf_obj_get: { parameters: ["buffer"], result: "i32" },
  bpf_obj_get_opts: { parameters: ["buffer", "buffer"], result: "i32" },
  bpf_obj_get_info_by_fd: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  bpf_prog_get_next_id: { parameters: ["u32", "buffer"], result: "i32" },
  bpf_link_get_next_id: { parameters: ["u32", "buffer"], result: "i32" },
  bpf_map_get_next_id: { parameters: ["u32", "buffer"], result: "i32" },
  bpf_prog_get_fd_by_id: { parameters: ["u32"], result: "i32" },
  bpf_link_get_fd_by_id: { parameters: ["u32"], result: "i32" },
  bpf_map_get_fd_by_id: { parameters: ["u32"], result: "i32" },
  bpf_link_create: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  bpf_link_detach: { parameters: ["i32"], result: "i32" },
  bpf_raw_tracepoint_open: { parameters: ["pointer", "i32"], result: "i32" },
  bpf_tc_hook_create: { parameters: ["buffer"], result: "i32" },
  bpf_tc_hook_destroy: { parameters: ["buffer"], result: "i32" },
  bpf_tc_attach: { parameters: ["buffer", "buffer"], result: "i32" },
  bpf_tc_detach: { parameters: ["buffer", "buffer"], result: "i32" },
  bpf_tc_query: { parameters: ["buffer", "buffer"], result: "i32" },
  bpf_map_lookup_elem: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  bpf_map_update_elem: { parameters: ["i32", "buffer", "buffer", "u64"], result: "i32" },
  bpf_prog_test_run_opts: { parameters: ["i32", "buffer"], result: "i32" },
  bpf_xdp_attach: { parameters: ["i32", "i32", "u32", "buffer"], result: "i32" },
  bpf_xdp_query: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  btf__load_from_kernel_by_id: { parameters: ["u32"], result: "pointer" },
  btf__free: { parameters: ["pointer"], result: "void" },
});

/** The raw bpf() syscall, for what libbpf 1.1.2 cannot express (TCX positions and revisions). */
const sys = lazyLibrary("libc.so.6", {
  syscall: { parameters: ["i64", "i64", "buffer", "u32"], result: "i64" },
  __errno_location: { parameters: [], result: "pointer" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
});

/** A libbpf or bpf() call that failed. */
export class LibbpfError extends Error {
  /** The errno name, e.g. `EPERM`. */
  readonly code: string;
  constructor(
    /** What was being done, e.g. `load program xdp_counter`. */
    readonly op: string,
    /** The positive errno value. */
    readonly errno: number,
    /** libbpf's own messages printed during the call (warnings and info). */
    readonly libbpfLog: string[] = [],
    /** The kernel verifier's log, when the kernel refused a program. */
    readonly verifierLog?: string,
  ) {
    const code = errnoName(errno);
    super(`${op}: ${code}${libbpfLog.length ? ` (${libbpfLog.at(-1)})` : ""}`);
    this.name = "LibbpfError";
    this.code = code;
  }
}

// ---- libbpf's print callback: messages are collected while a call is in flight -------------------

let captured: string[] | null = null;
const printCallback = new Deno.UnsafeCallback(
  { parameters: ["i32", "pointer", "pointer"], result: "i32" } as const,
  (level, fmt, args) => {
    const message = vformat(fmt, args);
    if (captured && level <= 1) captured.push(message);
    else if (Deno.env.get("BPFD_LIBBPF_DEBUG")) console.error(`libbpf: ${message.trimEnd()}`);
    return 0;
  },
);
let printInstalled = false;

/** Runs `fn` and returns what libbpf printed meanwhile. */
function withLog<T>(fn: () => T): { value: T; log: string[] } {
  if (!printInstalled) {
    lib.libbpf_set_print(printCallback.pointer);
    printInstalled = true;
  }
  const outer = captured;
  const log: string[] = [];
  captured = log;
  try {
    return { value: fn(), log };
  } finally {
    captured = outer;
  }
}

const LOG_BEGIN = "-- BEGIN PROG LOAD LOG --";
const LOG_END = "-- END PROG LOAD LOG --";

/** Splits libbpf's messages into its own lines and the verifier log it forwards between markers. */
function splitVerifierLog(log: string[]): { messages: string[]; verifierLog?: string } {
  const joined = log.join("");
  const begin = joined.indexOf(LOG_BEGIN);
  if (begin < 0) return { messages: log.map((l) => l.trim()).filter(Boolean) };
  const end = joined.indexOf(LOG_END, begin);
  const verifierLog = joined.slice(begin + LOG_BEGIN.length, end < 0 ? undefined : end).trim();
  const rest = joined.slice(0, begin) + (end < 0 ? "" : joined.slice(end + LOG_END.length));
  return { messages: rest.split("\n").map((l) => l.trim()).filter(Boolean), verifierLog };
}

/** Calls an int-returning libbpf function; a negative result (-errno) becomes a LibbpfError. */
function check(op: string, call: () => number): number {
  const { value, log } = withLog(call);
  if (value < 0) {
    const { messages, verifierLog } = splitVerifierLog(log);
    throw new LibbpfError(op, -value, messages, verifierLog);
  }
  return value;
}

/** Calls a pointer-returning libbpf function; null becomes a LibbpfError with libbpf_get_error's errno. */
function checkPointer(op: string, call: () => Deno.PointerValue): Deno.PointerObject {
  const { value, log } = withLog(call);
  if (value === null) {
    const err = Number(lib.libbpf_get_error(null));
    throw new LibbpfError(op, err < 0 ? -err : 22, splitVerifierLog(log).messages);
  }
  return value;
}

// ---- bpf_object ----------------------------------------------------------------------------------

/** A program inside an opened object file. */
export interface ObjectProgram {
  name: string;
  section: string;
  /** `enum bpf_prog_type` libbpf derived from the section name (0 when it could not tell). */
  progType: number;
  expectedAttachType: number;
}

/** A map inside an opened object file. */
export interface ObjectMap {
  name: string;
  mapType: number;
  /** `.rodata`, `.data`, `.bss`, `.kconfig`: maps libbpf makes for global variables. */
  internal: boolean;
}

/** A global variable in `.rodata`, `.data` or `.bss`, from the object's BTF. */
export interface GlobalVariable {
  name: string;
  section: string;
  offset: number;
  size: number;
}

/** An opened BPF object file (`struct bpf_object`). Close it when done; pins outlive it. */
export class BpfObject {
  #obj: Deno.PointerObject | null;
  #programs = new Map<string, Deno.PointerObject>();
  #maps = new Map<string, Deno.PointerObject>();

  private constructor(obj: Deno.PointerObject, readonly path: string) {
    this.#obj = obj;
    for (let p = lib.bpf_object__next_program(obj, null); p; p = lib.bpf_object__next_program(obj, p)) {
      this.#programs.set(readCString(lib.bpf_program__name(p)), p);
    }
    for (let m = lib.bpf_object__next_map(obj, null); m; m = lib.bpf_object__next_map(obj, m)) {
      this.#maps.set(readCString(lib.bpf_map__name(m)), m);
    }
  }

  /** Opens (parses) an ELF object file; nothing reaches the kernel until {@link load}. */
  static open(path: string): BpfObject {
    const obj = checkPointer(`open object ${path}`, () => lib.bpf_object__open_file(cstring(path), null));
    return new BpfObject(obj, path);
  }

  get #handle(): Deno.PointerObject {
    if (!this.#obj) throw new Error("bpf object is closed");
    return this.#obj;
  }

  /** The programs in the object, in ELF order. */
  programs(): ObjectProgram[] {
    return [...this.#programs].map(([name, p]) => ({
      name,
      section: readCString(lib.bpf_program__section_name(p)),
      progType: lib.bpf_program__type(p),
      expectedAttachType: lib.bpf_program__expected_attach_type(p),
    }));
  }

  /** The maps in the object. */
  maps(): ObjectMap[] {
    return [...this.#maps].map(([name, m]) => ({
      name,
      mapType: lib.bpf_map__type(m),
      internal: lib.bpf_map__is_internal(m),
    }));
  }

  #program(name: string): Deno.PointerObject {
    const p = this.#programs.get(name);
    if (!p) throw new LibbpfError(`find program ${name} in ${this.path}`, 2);
    return p;
  }

  #map(name: string): Deno.PointerObject {
    const m = this.#maps.get(name);
    if (!m) throw new LibbpfError(`find map ${name} in ${this.path}`, 2);
    return m;
  }

  /** Sets a program's type and expected attach type before load. */
  setProgramType(name: string, progType: number, expectedAttachType?: number): void {
    const p = this.#program(name);
    check(`set type of ${name}`, () => lib.bpf_program__set_type(p, progType));
    if (expectedAttachType !== undefined) {
      check(
        `set attach type of ${name}`,
        () => lib.bpf_program__set_expected_attach_type(p, expectedAttachType),
      );
    }
  }

  /** Whether `load` loads this program (one failing program fails the whole object). */
  setAutoload(name: string, autoload: boolean): void {
    const p = this.#program(name);
    check(`set autoload of ${name}`, () => lib.bpf_program__set_autoload(p, autoload));
  }

  /** The kernel function a tracing (fentry/fexit) program attaches to, resolved in vmlinux BTF at load. */
  setAttachTarget(name: string, fnName: string): void {
    const p = this.#program(name);
    check(
      `set attach target of ${name} to ${fnName}`,
      () => lib.bpf_program__set_attach_target(p, 0, cstring(fnName)),
    );
  }

  /**
   * Makes `name` an extension (freplace) of function `fnName` inside the loaded program `targetFd`: the
   * program is verified against that function's prototype and then attached with {@link freplaceAttach}.
   */
  setAttachProgram(name: string, targetFd: number, fnName: string): void {
    const p = this.#program(name);
    check(
      `set attach target of ${name} to ${fnName} of program fd ${targetFd}`,
      () => lib.bpf_program__set_attach_target(p, targetFd, cstring(fnName)),
    );
  }

  /** Global variables of `.rodata`, `.data` and `.bss`, from the object's BTF. */
  globals(): GlobalVariable[] {
    const btf = lib.bpf_object__btf(this.#handle);
    if (!btf) return [];
    const vars: GlobalVariable[] = [];
    for (const section of [".rodata", ".data", ".bss"]) {
      const id = lib.btf__find_by_name_kind(btf, cstring(section), BTF_KIND_DATASEC);
      if (id <= 0) continue;
      const sec = lib.btf__type_by_id(btf, id);
      if (!sec) continue;
      const view = new Deno.UnsafePointerView(sec);
      const vlen = view.getUint32(BtfType.info) & 0xffff;
      for (let i = 0; i < vlen; i++) {
        const at = BtfType.size + i * BtfVarSecinfo.size;
        const varType = lib.btf__type_by_id(btf, view.getUint32(at + BtfVarSecinfo.type));
        if (!varType) continue;
        const nameOff = new Deno.UnsafePointerView(varType).getUint32(BtfType.nameOff);
        vars.push({
          name: readCString(lib.btf__name_by_offset(btf, nameOff)),
          section,
          offset: view.getUint32(at + BtfVarSecinfo.offset),
          size: view.getUint32(at + BtfVarSecinfo.bytes),
        });
      }
    }
    return vars;
  }

  /** Overwrites a global variable's initial value before load; `value` must have the variable's size. */
  setGlobal(variable: GlobalVariable, value: Uint8Array): void {
    const entry = [...this.#maps].find(([name, m]) =>
      lib.bpf_map__is_internal(m) && name.endsWith(variable.section)
    );
    if (!entry) throw new LibbpfError(`find map for ${variable.section}`, 2);
    const [, map] = entry;
    const sizeOut = new BigUint64Array(1);
    const initial = lib.bpf_map__initial_value(map, new Uint8Array(sizeOut.buffer));
    if (!initial) throw new LibbpfError(`read initial value of ${variable.section}`, 22);
    const size = Number(sizeOut[0]);
    const data = new Uint8Array(size);
    data.set(new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(initial, size)));
    data.set(value, variable.offset);
    check(
      `set ${variable.section} variable ${variable.name}`,
      () => lib.bpf_map__set_initial_value(map, data, BigInt(size)),
    );
  }

  /** Makes map `name` use an existing map (e.g. one pinned by another program) instead of creating one. */
  reuseMapFd(name: string, fd: number): void {
    const m = this.#map(name);
    check(`reuse map ${name}`, () => lib.bpf_map__reuse_fd(m, fd));
  }

  /** Loads the object's maps and (autoload) programs into the kernel. */
  load(): void {
    const obj = this.#handle;
    check(`load ${this.path}`, () => lib.bpf_object__load(obj));
  }

  /** The fd of a loaded program, owned by the object (closed with it). */
  programFd(name: string): number {
    const p = this.#program(name);
    return check(`fd of program ${name}`, () => lib.bpf_program__fd(p));
  }

  /** The fd of a loaded map, owned by the object. */
  mapFd(name: string): number {
    const m = this.#map(name);
    return check(`fd of map ${name}`, () => lib.bpf_map__fd(m));
  }

  /** Frees the object and its fds; pinned programs and maps stay in the kernel. */
  close(): void {
    if (this.#obj) lib.bpf_object__close(this.#obj);
    this.#obj = null;
  }
}

// ---- pins and fds --------------------------------------------------------------------------------

/** Pins the object behind `fd` at `path` on a bpffs. */
export function objPin(fd: number, path: string): void {
  check(`pin ${path}`, () => lib.bpf_obj_pin(fd, cstring(path)));
}

/** Opens a pinned object; the caller owns (closes) the fd. */
export function objGet(path: string): number {
  return check(`open pin ${path}`, () => lib.bpf_obj_get(cstring(path)));
}

/**
 * Opens a pinned object read-only (`bpf_obj_get_opts` with BPF_F_RDONLY): what a process that may read a
 * pin (group `bpfd`, mode 0640) but not write it can do, without CAP_BPF.
 */
export function objGetReadOnly(path: string): number {
  const opts = new Uint8Array(ObjGetOpts.size);
  const dv = new DataView(opts.buffer);
  dv.setBigUint64(ObjGetOpts.sz, BigInt(ObjGetOpts.size), true);
  dv.setUint32(ObjGetOpts.fileFlags, BPF_F_RDONLY, true);
  return check(`open pin ${path} read-only`, () => lib.bpf_obj_get_opts(cstring(path), opts));
}

/** Runs `fn` with a fd and closes it afterwards. */
export function withFd<T>(fd: number, fn: (fd: number) => T): T {
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

export { closeFd };

// ---- kernel object info and enumeration -----------------------------------------------------------

/** What the kernel says about a loaded program (`struct bpf_prog_info`), as bpftool shows it. */
export interface ProgramInfo {
  id: number;
  type: string;
  typeId: number;
  name: string;
  tag: string;
  loadedAt: string;
  uid: number;
  mapIds: number[];
  bytesXlated: number;
  bytesJited: number;
  verifiedInsns: number;
  btfId: number;
  runTimeNs: number;
  runCount: number;
}

function infoByFd(fd: number, size: number, op: string, prepare?: (buf: DataView) => void): Uint8Array {
  const buf = new Uint8Array(size);
  prepare?.(new DataView(buf.buffer));
  const len = new Uint32Array([size]);
  check(op, () => lib.bpf_obj_get_info_by_fd(fd, buf, new Uint8Array(len.buffer)));
  return buf;
}

let bootTimeMs: number | undefined;
/** Wall-clock time of boot, to turn load_time (ns since boot) into a date, as bpftool does. */
function bootTime(): number {
  if (bootTimeMs === undefined) {
    const uptime = Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]);
    bootTimeMs = Date.now() - uptime * 1000;
  }
  return bootTimeMs;
}

/** `bpf_obj_get_info_by_fd` for a program fd, including its map ids. */
export function programInfo(fd: number): ProgramInfo {
  const first = new DataView(infoByFd(fd, ProgInfo.size, "program info").buffer);
  const nrMaps = first.getUint32(ProgInfo.nrMapIds, true);
  const mapIds = new Uint32Array(nrMaps);
  const buf = infoByFd(fd, ProgInfo.size, "program info", (dv) => {
    dv.setUint32(ProgInfo.nrMapIds, nrMaps, true);
    dv.setBigUint64(ProgInfo.mapIds, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(mapIds))), true);
  });
  const dv = new DataView(buf.buffer);
  const typeId = dv.getUint32(ProgInfo.type, true);
  const tag = [...buf.subarray(ProgInfo.tag, ProgInfo.tag + 8)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  const loadNs = dv.getBigUint64(ProgInfo.loadTime, true);
  return {
    id: dv.getUint32(ProgInfo.id, true),
    type: PROG_TYPE_NAMES[typeId] ?? `type ${typeId}`,
    typeId,
    name: fixedString(buf, ProgInfo.name, ProgInfo.nameLen),
    tag,
    loadedAt: new Date(bootTime() + Number(loadNs / 1_000_000n)).toISOString(),
    uid: dv.getUint32(ProgInfo.createdByUid, true),
    mapIds: [...mapIds.subarray(0, Math.min(nrMaps, dv.getUint32(ProgInfo.nrMapIds, true)))],
    bytesXlated: dv.getUint32(ProgInfo.xlatedProgLen, true),
    bytesJited: dv.getUint32(ProgInfo.jitedProgLen, true),
    verifiedInsns: dv.getUint32(ProgInfo.verifiedInsns, true),
    btfId: dv.getUint32(ProgInfo.btfId, true),
    runTimeNs: Number(dv.getBigUint64(ProgInfo.runTimeNs, true)),
    runCount: Number(dv.getBigUint64(ProgInfo.runCnt, true)),
  };
}

/** What the kernel says about a link. `target` is the ifindex for xdp and tcx links. */
export interface LinkInfoValue {
  id: number;
  type: string;
  programId: number;
  ifindex?: number;
}

/** `bpf_obj_get_info_by_fd` for a link fd. */
export function linkInfo(fd: number): LinkInfoValue {
  const dv = new DataView(infoByFd(fd, LinkInfo.size, "link info").buffer);
  const typeId = dv.getUint32(LinkInfo.type, true);
  const type = LINK_TYPE_NAMES[typeId] ?? `type ${typeId}`;
  return {
    id: dv.getUint32(LinkInfo.id, true),
    type,
    programId: dv.getUint32(LinkInfo.progId, true),
    ...(type === "xdp" || type === "tcx" ? { ifindex: dv.getUint32(LinkInfo.unionStart, true) } : {}),
  };
}

/** What the kernel says about a map. */
export interface MapInfoValue {
  id: number;
  type: number;
  name: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/** `bpf_obj_get_info_by_fd` for a map fd. */
export function mapInfo(fd: number): MapInfoValue {
  const buf = infoByFd(fd, MapInfo.size, "map info");
  const dv = new DataView(buf.buffer);
  return {
    id: dv.getUint32(MapInfo.id, true),
    type: dv.getUint32(MapInfo.type, true),
    name: fixedString(buf, MapInfo.name, MapInfo.nameLen),
    keySize: dv.getUint32(MapInfo.keySize, true),
    valueSize: dv.getUint32(MapInfo.valueSize, true),
    maxEntries: dv.getUint32(MapInfo.maxEntries, true),
  };
}

function ids(next: (start: number, out: Uint8Array) => number): number[] {
  const out = new Uint32Array(1);
  const bytes = new Uint8Array(out.buffer);
  const found: number[] = [];
  let id = 0;
  while (next(id, bytes) === 0) {
    id = out[0];
    found.push(id);
  }
  return found;
}

/** Ids of every program loaded in the kernel, ascending. */
export const programIds = (): number[] => ids((s, o) => lib.bpf_prog_get_next_id(s, o));
/** Ids of every BPF link in the kernel, ascending. */
export const linkIds = (): number[] => ids((s, o) => lib.bpf_link_get_next_id(s, o));
/** Ids of every map in the kernel, ascending. */
export const mapIds = (): number[] => ids((s, o) => lib.bpf_map_get_next_id(s, o));

/** A new fd for program `id` (ENOENT if it is gone). */
export const programFdById = (id: number): number =>
  check(`open program ${id}`, () => lib.bpf_prog_get_fd_by_id(id));
/** A new fd for link `id`. */
export const linkFdById = (id: number): number =>
  check(`open link ${id}`, () => lib.bpf_link_get_fd_by_id(id));
/** A new fd for map `id`. */
export const mapFdById = (id: number): number => check(`open map ${id}`, () => lib.bpf_map_get_fd_by_id(id));

// ---- links ---------------------------------------------------------------------------------------

/** `bpf_link_create`: attaches a program and returns the link fd (the link lives while fd or pin do). */
export function linkCreate(
  op: string,
  progFd: number,
  targetFd: number,
  attachType: number,
  flags = 0,
): number {
  const opts = new Uint8Array(LinkCreateOpts.size);
  const dv = new DataView(opts.buffer);
  dv.setBigUint64(0, BigInt(LinkCreateOpts.size), true);
  dv.setUint32(LinkCreateOpts.flags, flags, true);
  return check(op, () => lib.bpf_link_create(progFd, targetFd, attachType, opts));
}

/** Detaches a link from its hook even if other fds or pins still hold it. */
export function linkDetach(fd: number): void {
  check("detach link", () => lib.bpf_link_detach(fd));
}

/** Attaches a tracing program (fentry/fexit) at the target given at load; returns the link fd. */
export function tracingAttach(op: string, progFd: number): number {
  return check(op, () => lib.bpf_raw_tracepoint_open(null, progFd));
}

// ---- tc (cls_bpf on a clsact qdisc) ----------------------------------------------------------------

function tcHook(ifindex: number, attachPoint: number): Uint8Array {
  const hook = new Uint8Array(TcHook.size);
  const dv = new DataView(hook.buffer);
  dv.setBigUint64(0, BigInt(TcHook.size), true);
  dv.setInt32(TcHook.ifindex, ifindex, true);
  dv.setUint32(TcHook.attachPoint, attachPoint, true);
  return hook;
}

function tcOpts(fields: { progFd?: number; handle?: number; priority?: number }): Uint8Array {
  const opts = new Uint8Array(TcOpts.size);
  const dv = new DataView(opts.buffer);
  dv.setBigUint64(0, BigInt(TcOpts.size), true);
  dv.setInt32(TcOpts.progFd, fields.progFd ?? 0, true);
  dv.setUint32(TcOpts.handle, fields.handle ?? 0, true);
  dv.setUint32(TcOpts.priority, fields.priority ?? 0, true);
  return opts;
}

/** Creates the clsact qdisc; returns false when one already exists (someone else's, or ours). */
export function tcHookCreate(ifindex: number, attachPoint: number): boolean {
  const r = withLog(() => lib.bpf_tc_hook_create(tcHook(ifindex, attachPoint))).value;
  if (r === -17) return false;
  if (r < 0) throw new LibbpfError(`create clsact qdisc on ifindex ${ifindex}`, -r);
  return true;
}

/** Removes the clsact qdisc with every filter on it. Only for qdiscs bpfd created. */
export function tcHookDestroy(ifindex: number, attachPoint: number): void {
  check(
    `remove clsact qdisc on ifindex ${ifindex}`,
    () => lib.bpf_tc_hook_destroy(tcHook(ifindex, attachPoint)),
  );
}

/**
 * Adds a cls_bpf filter (direct-action) with this handle and priority. With `replace`, swaps the program
 * of the existing filter with that handle and priority in one step (cls_bpf replaces it under RCU).
 */
export function tcAttach(
  ifindex: number,
  attachPoint: number,
  progFd: number,
  handle: number,
  priority: number,
  replace = false,
): { handle: number; priority: number } {
  const opts = tcOpts({ progFd, handle, priority });
  if (replace) new DataView(opts.buffer).setUint32(TcOpts.flags, BPF_TC_F_REPLACE, true);
  check(
    `attach tc filter on ifindex ${ifindex}`,
    () => lib.bpf_tc_attach(tcHook(ifindex, attachPoint), opts),
  );
  const dv = new DataView(opts.buffer);
  return { handle: dv.getUint32(TcOpts.handle, true), priority: dv.getUint32(TcOpts.priority, true) };
}

/** Removes the filter with this handle and priority (a fresh opts: prog_fd/prog_id/flags zero). */
export function tcDetach(ifindex: number, attachPoint: number, handle: number, priority: number): void {
  check(
    `detach tc filter ${handle}/${priority} on ifindex ${ifindex}`,
    () => lib.bpf_tc_detach(tcHook(ifindex, attachPoint), tcOpts({ handle, priority })),
  );
}

/** The program id of the filter with this handle and priority, or undefined if there is none. */
export function tcQuery(
  ifindex: number,
  attachPoint: number,
  handle: number,
  priority: number,
): number | undefined {
  const opts = tcOpts({ handle, priority });
  const r = withLog(() => lib.bpf_tc_query(tcHook(ifindex, attachPoint), opts)).value;
  if (r === -2 || r === -19 || r === -22) return undefined;
  if (r < 0) throw new LibbpfError(`query tc filter on ifindex ${ifindex}`, -r);
  return new DataView(opts.buffer).getUint32(TcOpts.progId, true);
}

// ---- maps and test runs ------------------------------------------------------------------------------

/** Looks up `key` in a map; undefined when the key is absent. */
export function mapLookup(fd: number, key: Uint8Array, valueSize: number): Uint8Array | undefined {
  const value = new Uint8Array(valueSize);
  const r = lib.bpf_map_lookup_elem(fd, key as Uint8Array<ArrayBuffer>, value);
  if (r === -2) return undefined;
  if (r < 0) throw new LibbpfError("map lookup", -r);
  return value;
}

/** Writes `key` → `value` in a map. */
export function mapUpdate(fd: number, key: Uint8Array, value: Uint8Array): void {
  check(
    "map update",
    () => lib.bpf_map_update_elem(fd, key as Uint8Array<ArrayBuffer>, value as Uint8Array<ArrayBuffer>, 0n),
  );
}

/** `BPF_PROG_TEST_RUN`: runs the program `repeat` times on `data`; duration is ns per run. */
export function testRun(
  progFd: number,
  data: Uint8Array,
  repeat: number,
): { retval: number; durationNs: number } {
  const opts = new Uint8Array(TestRunOpts.size);
  const dv = new DataView(opts.buffer);
  const input = new Uint8Array(data);
  dv.setBigUint64(0, BigInt(TestRunOpts.size), true);
  dv.setBigUint64(TestRunOpts.dataIn, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(input))), true);
  dv.setUint32(TestRunOpts.dataSizeIn, input.length, true);
  dv.setUint32(TestRunOpts.repeat, repeat, true);
  check("test run", () => lib.bpf_prog_test_run_opts(progFd, opts));
  return {
    retval: dv.getUint32(TestRunOpts.retval, true),
    durationNs: dv.getUint32(TestRunOpts.duration, true),
  };
}

// ---- raw bpf(): TCX (mprog) positions and revisions, freplace targets, link updates ----------------

function sysErrno(): number {
  const p = sys.__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

/** Issues bpf(cmd, attr, size); returns the result (an fd or 0) or throws with errno. */
function sysBpf(op: string, cmd: number, attr: Uint8Array<ArrayBuffer>): number {
  const r = Number(sys.syscall(BigInt(SYS_bpf), BigInt(cmd), attr, attr.length));
  if (r < 0) throw new LibbpfError(op, sysErrno() || 22);
  return r;
}

/** Where a new program goes on an mprog hook (TCX): before/after a link given by fd, or first/last. */
export interface MprogPosition {
  /** `BpfAttachFlags` bits: BEFORE or AFTER, with LINK when `relativeFd` names a link. */
  flags: number;
  relativeFd?: number;
}

/**
 * `BPF_LINK_CREATE` for a TCX hook at a position, refused with ESTALE if the hook's revision is no longer
 * `expectedRevision` (0: do not check). Returns the link fd.
 */
export function tcxLinkCreate(
  op: string,
  progFd: number,
  ifindex: number,
  attachType: number,
  position: MprogPosition,
  expectedRevision: bigint,
): number {
  const attr = new Uint8Array(BPF_ATTR_SIZE);
  const dv = new DataView(attr.buffer);
  dv.setUint32(AttrLinkCreate.progFd, progFd, true);
  dv.setUint32(AttrLinkCreate.targetFd, ifindex, true);
  dv.setUint32(AttrLinkCreate.attachType, attachType, true);
  dv.setUint32(AttrLinkCreate.flags, position.flags, true);
  dv.setUint32(AttrLinkCreate.tcxRelative, position.relativeFd ?? 0, true);
  dv.setBigUint64(AttrLinkCreate.tcxExpectedRevision, expectedRevision, true);
  return sysBpf(op, BpfCmd.LINK_CREATE, attr);
}

/** An mprog hook's programs and links in run order, and its revision (changes with every attach/detach). */
export interface MprogState {
  revision: bigint;
  programIds: number[];
  /** Link ids in run order; 0 for programs attached without a link. */
  linkIds: number[];
}

/** `BPF_PROG_QUERY` on an mprog hook (TCX ingress/egress of an interface). */
export function mprogQuery(ifindex: number, attachType: number): MprogState {
  for (let room = 16;; room *= 4) {
    const progIds = new Uint32Array(room);
    const linkIds = new Uint32Array(room);
    const attr = new Uint8Array(BPF_ATTR_SIZE);
    const dv = new DataView(attr.buffer);
    const ptr = (a: Uint32Array) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(a)));
    dv.setUint32(AttrProgQuery.targetFd, ifindex, true);
    dv.setUint32(AttrProgQuery.attachType, attachType, true);
    dv.setBigUint64(AttrProgQuery.progIds, ptr(progIds), true);
    dv.setUint32(AttrProgQuery.count, room, true);
    dv.setBigUint64(AttrProgQuery.linkIds, ptr(linkIds), true);
    try {
      sysBpf(`query hook ${attachType} of ifindex ${ifindex}`, BpfCmd.PROG_QUERY, attr);
    } catch (err) {
      if (err instanceof LibbpfError && err.code === "ENOSPC") continue;
      throw err;
    }
    const count = dv.getUint32(AttrProgQuery.count, true);
    if (count > room) continue;
    return {
      revision: dv.getBigUint64(AttrProgQuery.revision, true),
      programIds: [...progIds.subarray(0, count)],
      linkIds: [...linkIds.subarray(0, count)],
    };
  }
}

/** Attaches a loaded extension program to function `btfId` of program `targetFd`; returns the link fd. */
export function freplaceAttach(op: string, extFd: number, targetFd: number, btfId: number): number {
  const attr = new Uint8Array(BPF_ATTR_SIZE);
  const dv = new DataView(attr.buffer);
  dv.setUint32(AttrLinkCreate.progFd, extFd, true);
  dv.setUint32(AttrLinkCreate.targetFd, targetFd, true);
  dv.setUint32(AttrLinkCreate.targetBtfId, btfId, true);
  return sysBpf(op, BpfCmd.LINK_CREATE, attr);
}

/** `BPF_LINK_UPDATE`: swaps a link's program; with `oldProgFd`, only if the link still runs that one. */
export function linkUpdate(op: string, linkFd: number, newProgFd: number, oldProgFd?: number): void {
  const attr = new Uint8Array(BPF_ATTR_SIZE);
  const dv = new DataView(attr.buffer);
  dv.setUint32(AttrLinkUpdate.linkFd, linkFd, true);
  dv.setUint32(AttrLinkUpdate.newProgFd, newProgFd, true);
  if (oldProgFd !== undefined) {
    dv.setUint32(AttrLinkUpdate.flags, 1 << 2, true); // BPF_F_REPLACE
    dv.setUint32(AttrLinkUpdate.oldProgFd, oldProgFd, true);
  }
  sysBpf(op, BpfCmd.LINK_UPDATE, attr);
}

/** The BTF id of function `name` in a loaded program's BTF (the freplace target id), or 0. */
export function btfFuncId(progFd: number, name: string): number {
  const btfId = programInfo(progFd).btfId;
  if (!btfId) return 0;
  const btf = checkPointer(`load BTF ${btfId}`, () => lib.btf__load_from_kernel_by_id(btfId));
  try {
    const id = lib.btf__find_by_name_kind(btf, cstring(name), BTF_KIND_FUNC);
    return id > 0 ? id : 0;
  } finally {
    lib.btf__free(btf);
  }
}

// ---- XDP over netlink (what libxdp uses, so that several managers can share an interface) ----------

/**
 * Attaches `progFd` (-1: detaches) as the interface's XDP program. With `oldProgFd`, replaces only if
 * that program is still the one attached (EEXIST otherwise); without, refuses when any is attached.
 */
export function xdpAttach(
  op: string,
  ifindex: number,
  progFd: number,
  flags: number,
  oldProgFd?: number,
): void {
  const opts = new Uint8Array(XdpAttachOpts.size);
  const dv = new DataView(opts.buffer);
  dv.setBigUint64(0, BigInt(XdpAttachOpts.size), true);
  dv.setInt32(XdpAttachOpts.oldProgFd, oldProgFd ?? 0, true);
  check(op, () => lib.bpf_xdp_attach(ifindex, progFd, flags, opts));
}

/** The XDP program attached to an interface (driver or generic mode), if any. */
export function xdpQuery(ifindex: number): { programId: number; mode?: "native" | "skb" | "hw" } {
  const opts = new Uint8Array(XdpQueryOpts.size);
  const dv = new DataView(opts.buffer);
  dv.setBigUint64(0, BigInt(XdpQueryOpts.size), true);
  check(`query XDP on ifindex ${ifindex}`, () => lib.bpf_xdp_query(ifindex, 0, opts));
  const drv = dv.getUint32(XdpQueryOpts.drvProgId, true);
  const skb = dv.getUint32(XdpQueryOpts.skbProgId, true);
  const hw = dv.getUint32(XdpQueryOpts.hwProgId, true);
  const mode = dv.getUint8(XdpQueryOpts.attachMode);
  if (mode === XdpAttached.NONE) return { programId: 0 };
  if (drv) return { programId: drv, mode: "native" };
  if (skb) return { programId: skb, mode: "skb" };
  return { programId: hw, mode: "hw" };
}

/**
 * Takes libxdp's lock: an exclusive flock on its bpffs directory (`/sys/fs/bpf/xdp`), held while
 * dispatcher pins are read or changed, so bpfd and libxdp users (xdp-loader) never see each other's
 * half-written pin directories. Waits for the lock; returns the release.
 */
export function lockDirectory(path: string): () => void {
  const fd = sys.open(cstring(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw new LibbpfError(`open ${path}`, sysErrno());
  if (sys.flock(fd, LOCK_EX) !== 0) {
    const err = sysErrno();
    closeFd(fd);
    throw new LibbpfError(`lock ${path}`, err);
  }
  return () => {
    sys.flock(fd, LOCK_UN);
    closeFd(fd);
  };
}
