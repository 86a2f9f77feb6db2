/**
 * What the kernel has, as `bpftool prog list` and `bpftool link list` show it: every program and link,
 * bpfd's or anyone's.
 *
 * @example
 * ```ts
 * for (const p of allPrograms()) console.log(p.id, p.type, p.name);
 * ```
 * @module
 */
import * as bpf from "../ffi/libbpf.ts";

/** What the kernel says about program `id`, or undefined if it is gone. */
export function programInfo(id: number): bpf.ProgramInfo | undefined {
  try {
    return bpf.withFd(bpf.programFdById(id), bpf.programInfo);
  } catch {
    return undefined; // unloaded between the id walk and the open
  }
}

/** The kernel's name of program `id` ("" once it is gone). */
export function programName(id: number): string {
  return programInfo(id)?.name ?? "";
}

/** Every program in the kernel, with what the kernel says about it (the set `bpftool prog list` shows). */
export function allPrograms(): bpf.ProgramInfo[] {
  const found: bpf.ProgramInfo[] = [];
  for (const id of bpf.programIds()) {
    const info = programInfo(id);
    if (info) found.push(info);
  }
  return found;
}

/** Every BPF link in the kernel. */
export function allLinks(): bpf.LinkInfoValue[] {
  const found: bpf.LinkInfoValue[] = [];
  for (const id of bpf.linkIds()) {
    try {
      found.push(bpf.withFd(bpf.linkFdById(id), bpf.linkInfo));
    } catch { /* released meanwhile */ }
  }
  return found;
}
