/**
 * Paces bytecode roll-outs: per config, at most `maxunavailable` selected nodes (default 10%, at least 1)
 * may be between versions at once: reloading now, or failing. A node call holds a slot while it runs with
 * `allowReload: true`; without a slot the node makes every other change and answers `waiting`.
 *
 * @example
 * ```ts
 * const slot = rollout.acquire("cfg", "node-a", { selected: 100, maxUnavailable: "10%" });
 * ```
 * @module
 */

/** The default share of selected nodes that may be between versions. */
export const DEFAULT_MAX_UNAVAILABLE = "10%";

/** How many of `selected` nodes `maxUnavailable` ("10%", "3") allows: rounded down, at least 1. */
export function unavailableBudget(maxUnavailable: string | undefined, selected: number): number {
  const v = maxUnavailable ?? DEFAULT_MAX_UNAVAILABLE;
  const n = v.endsWith("%") ? Math.floor(selected * Number(v.slice(0, -1)) / 100) : Number(v);
  return Math.max(1, n);
}

/** Roll-out slots and failing nodes, per config (in memory: a restart leaves no node between versions). */
export class Rollout {
  #reloading = new Map<string, Set<string>>();
  #failing = new Map<string, Set<string>>();
  /** The most nodes of one config that held a slot at once (for benchmarks). */
  readonly peak = new Map<string, number>();

  /** Takes a slot for `node` if the config's budget allows; release() it after the call. */
  acquire(config: string, node: string, opts: { selected: number; maxUnavailable?: string }): boolean {
    const reloading = this.#reloading.get(config) ?? new Set();
    const failing = this.#failing.get(config) ?? new Set();
    const busy = new Set([...reloading, ...failing]);
    busy.delete(node);
    if (busy.size >= unavailableBudget(opts.maxUnavailable, opts.selected)) return false;
    reloading.add(node);
    this.#reloading.set(config, reloading);
    this.peak.set(config, Math.max(this.peak.get(config) ?? 0, reloading.size));
    return true;
  }

  /** Gives the slot back; `failed` records whether the node now counts as unavailable. */
  release(config: string, node: string, failed: boolean): void {
    this.#reloading.get(config)?.delete(node);
    this.setFailing(config, node, failed);
  }

  /** Records whether `node` fails for `config` (a failing node uses up budget). */
  setFailing(config: string, node: string, failed: boolean): void {
    const set = this.#failing.get(config) ?? new Set();
    if (failed) set.add(node);
    else set.delete(node);
    this.#failing.set(config, set);
  }

  /** Forgets a config (deleted). */
  forget(config: string): void {
    this.#reloading.delete(config);
    this.#failing.delete(config);
    this.peak.delete(config);
  }
}
