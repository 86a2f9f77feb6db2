/**
 * Typed bindings to Debian's libbpf 1.1.2: the only module that binds libbpf. Symbols are bound on first
 * use. Every failure throws a {@link LibbpfError} carrying the operation, the errno name, libbpf's own
 * messages and, for loads the kernel refused, the verifier log. Object files are in ./object.ts, tc and
 * XDP over netlink in ./netlink.ts, both through {@link lib} and {@link check}.
 *
 * @example
 * ```ts
 * import { objGet, programInfo, withFd } from "./ffi/libbpf.ts";
 * const info = withFd(objGet("/sys/fs/bpf/bpfd/progs/42"), programInfo);
 * ```
 * @module
 */
import {
  BPF_F_RDONLY,
  BTF_KIND_FUNC,
  LINK_TYPE_NAMES,
  LinkCreateOpts,
  LinkInfo,
  MapInfo,
  ObjGetOpts,
  PROG_TYPE_NAMES,
  ProgInfo,
  TestRunOpts,
} from "./abi.ts";
import { LibbpfError } from "./errno.ts";
import { closeFd, vformat } from "./libc.ts";
import { cstring, fixedString, lazyLibrary } from "./lazy.ts";

/** libbpf's symbols, bound on first use: for the ffi modules that wrap them, nobody else. */
export const lib = lazyLibrary("libbpf.so.1", {
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
  ring_buffer__new: { parameters: ["i32", "function", "pointer", "pointer"], result: "pointer" },
  ring_buffer__consume: { parameters: ["pointer"], result: "i32" },
  ring_buffer__free: { parameters: ["pointer"], result: "void" },
  bpf_prog_test_run_opts: { parameters: ["i32", "buffer"], result: "i32" },
  bpf_xdp_attach: { parameters: ["i32", "i32", "u32", "buffer"], result: "i32" },
  bpf_xdp_query: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  btf__load_from_kernel_by_id: { parameters: ["u32"], result: "pointer" },
  btf__free: { parameters: ["pointer"], result: "void" },
  bpf_prog_query: {
    parameters: ["i32", "u32", "u32", "buffer", "buffer", "buffer"],
    result: "i32",
  },
});

// ---- libbpf's print callback: messages are collected while a call is in flight -------------------

let captured: string[] | null = null;
/** libbpf's levels: 0 warn, 1 info (kept with a call's error), 2 debug (only with BPFD_LIBBPF_DEBUG). */
const LIBBPF_INFO = 1;
const printDebug = Boolean(Deno.env.get("BPFD_LIBBPF_DEBUG"));
const printCallback = new Deno.UnsafeCallback(
  { parameters: ["i32", "pointer", "pointer"], result: "i32" } as const,
  (level, fmt, args) => {
    // Formatting is most of a callback's cost, and a load prints dozens of debug lines nobody reads.
    const kept = captured !== null && level <= LIBBPF_INFO;
    if (!kept && !printDebug) return 0;
    const message = vformat(fmt, args);
    if (kept) captured!.push(message);
    else console.error(`libbpf: ${message.trimEnd()}`);
    return 0;
  },
);
let printInstalled = false;

/** Runs `fn` and returns what libbpf printed meanwhile. */
export function withLog<T>(fn: () => T): { value: T; log: string[] } {
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
export function check(op: string, call: () => number): number {
  const { value, log } = withLog(call);
  if (value < 0) {
    const { messages, verifierLog } = splitVerifierLog(log);
    throw new LibbpfError(op, -value, messages, verifierLog);
  }
  return value;
}

/** Calls a pointer-returning libbpf function; null becomes a LibbpfError with libbpf_get_error's errno. */
export function checkPointer(op: string, call: () => Deno.PointerValue): Deno.PointerObject {
  const { value, log } = withLog(call);
  if (value === null) {
    const err = Number(lib.libbpf_get_error(null));
    throw new LibbpfError(op, err < 0 ? -err : 22, splitVerifierLog(log).messages);
  }
  return value;
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

/** Attaches a raw tracepoint program to the raw tracepoint `name` (e.g. `sys_enter`); returns the link fd. */
export function rawTracepointOpen(op: string, name: string, progFd: number): number {
  const cname = cstring(name);
  return check(op, () => lib.bpf_raw_tracepoint_open(Deno.UnsafePointer.of(cname), progFd));
}

/** Attaches a tracing program (fentry/fexit, tp_btf) at the target given at load; returns the link fd. */
export function tracingAttach(op: string, progFd: number): number {
  return check(op, () => lib.bpf_raw_tracepoint_open(null, progFd));
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
