/**
 * A work queue in the style of client-go's: a key is queued at most once; a key added while it is being
 * processed is processed again afterwards (never twice at the same time); failures come back with
 * per-key exponential backoff; `n` workers take keys in order.
 *
 * @module
 */

export interface QueueOptions {
  /** First retry delay (ms); doubles per failure of the same key. */
  baseDelayMs?: number;
  /** Longest retry delay (ms). */
  maxDelayMs?: number;
}

export class WorkQueue {
  #queue: string[] = [];
  #dirty = new Set<string>();
  #processing = new Set<string>();
  #failures = new Map<string, number>();
  #timers = new Map<string, ReturnType<typeof setTimeout>>();
  #waiters: Array<() => void> = [];
  #idleWaiters: Array<() => void> = [];
  #stopped = false;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;

  constructor(opts: QueueOptions = {}) {
    this.baseDelayMs = opts.baseDelayMs ?? 200;
    this.maxDelayMs = opts.maxDelayMs ?? 30_000;
  }

  /** Queues `key` now (once, however often it is added before a worker takes it). */
  add(key: string): void {
    if (this.#stopped || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return; // re-queued when its worker is done
    this.#queue.push(key);
    this.#waiters.shift()?.();
  }

  /** Queues `key` after `ms` (an earlier pending timer for the key wins). */
  addAfter(key: string, ms: number): void {
    if (this.#stopped) return;
    if (ms <= 0) return this.add(key);
    if (this.#timers.has(key)) return;
    this.#timers.set(
      key,
      setTimeout(() => {
        this.#timers.delete(key);
        this.add(key);
      }, ms),
    );
  }

  /** Queues `key` after its backoff delay; returns the delay. */
  addRateLimited(key: string): number {
    const n = this.#failures.get(key) ?? 0;
    this.#failures.set(key, n + 1);
    const delay = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** n);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the backoff of `key` (after a success). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** How many times `key` failed in a row. */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  get length(): number {
    return this.#queue.length;
  }

  /** True when nothing is queued, being processed or waiting on a timer. */
  get idle(): boolean {
    return this.#queue.length === 0 && this.#processing.size === 0 && this.#timers.size === 0;
  }

  async #next(): Promise<string | undefined> {
    while (!this.#stopped && this.#queue.length === 0) {
      await new Promise<void>((r) => this.#waiters.push(r));
    }
    if (this.#stopped) return undefined;
    const key = this.#queue.shift()!;
    this.#dirty.delete(key);
    this.#processing.add(key);
    return key;
  }

  #done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.has(key)) {
      this.#queue.push(key);
      this.#waiters.shift()?.();
    }
    if (this.idle) { for (const w of this.#idleWaiters.splice(0)) w(); }
  }

  /**
   * Runs `n` workers until stop(). `handle` returns normally on success (the key's backoff is cleared)
   * or throws (the key comes back after its backoff); `onError` hears about failures.
   */
  run(
    n: number,
    handle: (key: string) => Promise<void>,
    onError: (key: string, err: unknown, retryInMs: number) => void,
  ): Promise<void> {
    const worker = async () => {
      while (true) {
        const key = await this.#next();
        if (key === undefined) return;
        try {
          await handle(key);
          this.forget(key);
        } catch (err) {
          if (!this.#stopped) onError(key, err, this.addRateLimited(key));
        } finally {
          this.#done(key);
        }
      }
    };
    return Promise.all(Array.from({ length: n }, worker)).then(() => {});
  }

  /** Resolves when the queue is idle. */
  whenIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  /** Stops the workers (after their current key) and drops pending timers. */
  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    for (const w of this.#waiters.splice(0)) w();
    for (const w of this.#idleWaiters.splice(0)) w();
  }
}
