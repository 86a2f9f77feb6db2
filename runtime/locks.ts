/**
 * Per-key mutual exclusion for async work: calls that touch the same hook run one after another, calls
 * on different hooks run side by side.
 *
 * @example
 * ```ts
 * const locks = new KeyedLocks();
 * await locks.with(["xdp:veth0"], async () => {});
 * ```
 * @module
 */

/** A set of named async locks. */
export class KeyedLocks {
  #tails = new Map<string, Promise<void>>();

  /** Runs `fn` holding every lock in `keys` (taken in sorted order, so two callers cannot deadlock). */
  async with<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const releases: Array<() => void> = [];
    for (const key of sorted) releases.push(await this.#acquire(key));
    try {
      return await fn();
    } finally {
      for (const release of releases.reverse()) release();
    }
  }

  async #acquire(key: string): Promise<() => void> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => release = resolve);
    const tail = previous.then(() => current);
    this.#tails.set(key, tail);
    await previous;
    return () => {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    };
  }
}
