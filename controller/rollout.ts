/**
 * Paces bytecode roll-outs: per config, at most `maxunavailable` selected nodes (default 10%, at least 1)
 * may be between versions at once: reloading now, or failing. A node call holds a slot while it runs with
 * `allowReload: true`; without a slot the node makes every other change and answers `waiting`, and is
 * asked again when a slot is released.
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
  #waiting = new Map<string, Set<string>>();
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

  /**
   * Gives the slot back; `failed` records whether the node now counts as unavailable. Returns a node that
   * waits for a slot of this config (to be asked again now), if any.
   */
  release(config: string, node: string, failed: boolean): string | undefined {
    this.#reloading.get(config)?.delete(node);
    this.setFailing(config, node, failed);
    const waiting = this.#waiting.get(config);
    const next = waiting?.values().next().value;
    if (next !== undefined) waiting!.delete(next);
    return next;
  }

  /** Records that `node` has a reload waiting for a slot of `config`. */
  wait(config: string, node: string): void {
    const set = this.#waiting.get(config) ?? new Set();
    set.add(node);
    this.#waiting.set(config, set);
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
    this.#waiting.delete(config);
    this.peak.delete(config);
  }
}
