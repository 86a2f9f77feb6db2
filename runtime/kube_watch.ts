/**
 * A list-then-watch cache of one resource on runtime/kube_fetch.ts, with lib/informer.ts's semantics:
 * `start()` resolves only after a list succeeded (listed again every second until then, or until `stop()`);
 * then it watches from the list's resourceVersion, again from the last one seen when the server ends a watch;
 * a 410 Gone, an ERROR event or a broken stream lists again a second later. `stop()` aborts the request.
 *
 * @example
 * ```ts
 * const policies = new ListWatch(kube, "/apis/bpfd.io/v1alpha1/bpfpolicies", { onChange: rebuild });
 * await policies.start(); // policies.list() holds the first list
 * ```
 * @module
 */
import type { KubeFetch } from "./kube_fetch.ts";

/** The parts of an object a cache needs. */
export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

/** One line of a watch answer. */
export interface WatchEvent<T = KubeObject> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

/**
 * The events of a watch answer: one JSON object per line, however the lines are split into chunks. When
 * `signal` aborts, the reading stops (the abort of a fetch alone did not always end a pending read).
 */
export async function* watchEvents<T>(
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<WatchEvent<T>> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const cancel = () => reader.cancel().catch(() => {/* already ended */});
  signal?.addEventListener("abort", cancel, { once: true });
  try {
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      const lines = (rest + r.value).split("\n");
      rest = lines.pop()!;
      for (const line of lines) if (line.trim()) yield JSON.parse(line);
    }
    signal?.throwIfAborted();
    if (rest.trim()) yield JSON.parse(rest); // a cut-off last line throws: a broken stream
  } finally {
    signal?.removeEventListener("abort", cancel);
    await cancel(); // the consumer stopped early: close the answer
  }
}

/** Options of a {@link ListWatch}. */
export interface ListWatchOptions {
  /** Called after every change of the cache once `start()` has resolved. */
  onChange?: () => void;
  /** Told about every failed list or watch; the cache lists again a second later. */
  onError?: (err: unknown) => void;
  /** How long the server keeps one watch open (default 300 s). */
  timeoutSeconds?: number;
}

const RESTART_MS = 1000;

const keyOf = (o: KubeObject) => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  const either = AbortSignal.any([signal, AbortSignal.timeout(ms)]);
  return new Promise((resolve) => {
    if (either.aborted) resolve();
    else either.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** The objects under one collection path, listed and then watched. `stop()` is final. */
export class ListWatch<T extends KubeObject = KubeObject> {
  #objects = new Map<string, T>();
  #resourceVersion = "";
  #abort = new AbortController();
  #watching?: Promise<void>;

  constructor(
    readonly kube: Pick<KubeFetch, "request" | "stream">,
    readonly path: string,
    readonly opts: ListWatchOptions = {},
  ) {}

  /** The cached objects. */
  list(): T[] {
    return [...this.#objects.values()];
  }

  /** Lists (again every second until a list succeeds or `stop()`), then watches in the background. */
  async start(): Promise<void> {
    if (await this.#listed(false)) this.#watching = this.#watch();
  }

  /** Aborts the list or watch in flight; resolves when nothing runs any more. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#watching;
  }

  /** Lists until a list succeeds (true) or `stop()` (false), waiting a second first when `again`. */
  async #listed(again: boolean): Promise<boolean> {
    const signal = this.#abort.signal;
    for (let wait = again; !signal.aborted; wait = true) {
      if (wait) await pause(RESTART_MS, signal);
      if (signal.aborted) break;
      try {
        const list = await this.kube.request<{ metadata?: { resourceVersion?: string }; items?: T[] }>(
          "GET",
          this.path,
          undefined,
          { signal },
        );
        const next = new Map((list.items ?? []).map((o) => [keyOf(o), o]));
        const changed = next.size !== this.#objects.size ||
          [...next].some(([key, o]) =>
            this.#objects.get(key)?.metadata?.resourceVersion !== o.metadata?.resourceVersion
          );
        this.#objects = next;
        this.#resourceVersion = list.metadata?.resourceVersion ?? "";
        if (changed && again) this.opts.onChange?.();
        return true;
      } catch (err) {
        if (!signal.aborted) this.opts.onError?.(err);
      }
    }
    return false;
  }

  /** Watches from the last resourceVersion until `stop()`; lists again after a failure. */
  async #watch(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        const started = Date.now();
        await this.#watchOnce(signal);
        // A server that ends watches at once is not asked again in a tight loop.
        if (Date.now() - started < RESTART_MS) await pause(RESTART_MS, signal);
      } catch (err) {
        if (signal.aborted) break;
        this.opts.onError?.(err);
        await this.#listed(true);
      }
    }
  }

  /** One watch request, applied to the cache event by event; returns when the server ends it. */
  async #watchOnce(stop: AbortSignal): Promise<void> {
    const seconds = this.opts.timeoutSeconds ?? 300;
    const query = `?watch=1&allowWatchBookmarks=true&resourceVersion=${
      encodeURIComponent(this.#resourceVersion)
    }&timeoutSeconds=${seconds}`;
    // A server that went silent is given up a little after it should have ended the watch itself.
    const signal = AbortSignal.any([stop, AbortSignal.timeout((seconds + 30) * 1000)]);
    for await (
      const { type, object } of watchEvents<T>(await this.kube.stream(this.path + query, signal), signal)
    ) {
      if (type === "ERROR") {
        const status = object as { code?: number; message?: string };
        throw new Error(`watch ${this.path}: ${status.code ?? "ERROR"} ${status.message ?? ""}`);
      }
      const version = object?.metadata?.resourceVersion;
      if (version) this.#resourceVersion = version;
      if (type === "ADDED" || type === "MODIFIED") this.#objects.set(keyOf(object), object);
      else if (type === "DELETED") this.#objects.delete(keyOf(object));
      else continue; // BOOKMARK: only the resourceVersion
      this.opts.onChange?.();
    }
  }
}
