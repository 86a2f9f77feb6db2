/**
 * What the kernel has, as `bpftool prog list` and `bpftool link list` show it: every program and link,
 * bpfd's or anyone's. {@link ProgramInfos} keeps what never changes while a program stays loaded, so a
 * `list` of 1,000 programs reads only their run stats (one info call each).
 *
 * @example
 * ```ts
 * const infos = new ProgramInfos();
 * for (const p of infos.all()) console.log(p.id, p.type, p.name, p.runCount);
 * ```
 * @module
 */
import * as bpf from "../ffi/libbpf.ts";
import { programRunStats } from "../ffi/bpf.ts";

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

/**
 * Program info with its unchanging part cached by id: each read opens the program by id and reads its run
 * stats; the rest is read once per program (again if the id now names a program loaded at another time).
 */
export class ProgramInfos {
  #cache = new Map<number, { info: bpf.ProgramInfo; loadTimeNs: number }>();

  /** What the kernel says about program `id`, or undefined if it is gone. */
  get(id: number): bpf.ProgramInfo | undefined {
    const stats = programRunStats(id);
    let cached = this.#cache.get(id);
    if (stats && cached?.loadTimeNs !== stats.loadTimeNs) {
      const info = programInfo(id);
      cached = info && { info, loadTimeNs: stats.loadTimeNs };
    }
    if (!stats || !cached) {
      this.#cache.delete(id);
      return undefined; // unloaded
    }
    this.#cache.set(id, cached);
    return { ...cached.info, runTimeNs: stats.runTimeNs, runCount: stats.runCount };
  }

  /** Every program in the kernel; forgets the ones gone. */
  all(): bpf.ProgramInfo[] {
    const ids = new Set(bpf.programIds());
    for (const id of this.#cache.keys()) if (!ids.has(id)) this.#cache.delete(id);
    const found: bpf.ProgramInfo[] = [];
    for (const id of ids) {
      const info = this.get(id);
      if (info) found.push(info);
    }
    return found;
  }
}
