/**
 * BPF object files through libbpf (`struct bpf_object`): open, choose and configure the programs, set
 * global variables, reuse pinned maps, load. Pins made from its fds outlive the object.
 *
 * @example
 * ```ts
 * import { BpfObject } from "./ffi/object.ts";
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
import { BTF_KIND_DATASEC, BtfType, BtfVarSecinfo } from "./abi.ts";
import { LibbpfError } from "./errno.ts";
import { cstring, readCString } from "./lazy.ts";
import { check, checkPointer, lib } from "./libbpf.ts";
import { releaseFreedHeap } from "./libc.ts";

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
    releaseFreedHeap();
  }
}
