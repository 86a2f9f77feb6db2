/**
 * What the kernel has, as `bpftool prog list` and `bpftool link list` show it: every program and link,
 * bpfd's or anyone's. {@link ProgramInfos} keeps what never changes while a program stays loaded, so a
 * `list` of 1,000 programs reads only their run stats (one info call each), and while the kernel collects
 * none, only which ids are still loaded.
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
import { runStatsHeld } from "../ffi/introspect.ts";

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

/** How old a program's run stats may be in {@link ProgramInfos.many} while the kernel collects none. */
const IDLE_STATS_MAX_AGE_MS = 5_000;

/**
 * Whether programs' run stats may be moving: this process holds a BPF_ENABLE_STATS fd, or the sysctl
 * kernel.bpf_stats_enabled is set. Another process's BPF_ENABLE_STATS fd (`bpftool prog profile`) does not
 * show in the sysctl; {@link ProgramInfos.many} then answers stats at most IDLE_STATS_MAX_AGE_MS old.
 */
export function runStatsMayMove(): boolean {
  if (runStatsHeld()) return true;
  try {
    return Deno.readTextFileSync("/proc/sys/kernel/bpf_stats_enabled").trim() !== "0";
  } catch {
    return true; // cannot tell: read them
  }
}

/**
 * Program info with its unchanging part cached by id: each read opens the program by id and reads its run
 * stats; the rest is read once per program (again if the id now names a program loaded at another time).
 */
export class ProgramInfos {
  #cache = new Map<number, { info: bpf.ProgramInfo; loadTimeNs: number; readAt: number }>();

  /** What the kernel says about program `id`, or undefined if it is gone. */
  get(id: number): bpf.ProgramInfo | undefined {
    const stats = programRunStats(id);
    let cached = this.#cache.get(id);
    if (stats && cached?.loadTimeNs !== stats.loadTimeNs) {
      const info = programInfo(id);
      cached = info && { info, loadTimeNs: stats.loadTimeNs, readAt: 0 };
    }
    if (!stats || !cached) {
      this.#cache.delete(id);
      return undefined; // unloaded
    }
    cached.info = { ...cached.info, runTimeNs: stats.runTimeNs, runCount: stats.runCount };
    cached.readAt = Date.now();
    this.#cache.set(id, cached);
    return cached.info;
  }

  /**
   * {@link get} for many programs (`list`). While the kernel collects no run stats their counters cannot
   * move, so a program whose id is still the kernel's and that was read in the last few seconds is answered
   * from that read: one walk of the kernel's program ids instead of three syscalls per program. (Stats
   * collected meanwhile without this process knowing, see {@link runStatsMayMove}, are seen at most
   * IDLE_STATS_MAX_AGE_MS late.)
   */
  many(ids: Iterable<number>): Map<number, bpf.ProgramInfo> {
    const found = new Map<number, bpf.ProgramInfo>();
    const live = runStatsMayMove() ? undefined : new Set(bpf.programIds());
    const freshSince = Date.now() - IDLE_STATS_MAX_AGE_MS;
    for (const id of ids) {
      const cached = this.#cache.get(id);
      if (live && !live.has(id)) {
        this.#cache.delete(id); // unloaded
        continue;
      }
      const info = live && cached && cached.readAt >= freshSince ? cached.info : this.get(id);
      if (info) found.set(id, info);
    }
    return found;
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
