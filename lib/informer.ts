/**
 * A client-node `ListWatch` that keeps running and starts only on a list that succeeded.
 *
 * client-node's `start()` resolves after a failed list too (it only reports it to `error` listeners), and
 * a watch that fails is not restarted. An API server that is restarting refuses connections, then answers
 * 404 for CRDs for a few seconds: whoever trusted that empty cache would act on "nothing exists" (the
 * controller unloaded every program of every node). Here `start()` lists again until a list succeeds, and
 * every failure restarts the watch a second later.
 *
 * @example
 * ```ts
 * const configs = new Informer(k8s, kc, "/apis/bpfd.io/v1alpha1/bpfprogramconfigs", list, {
 *   onError: (err) => log.warn("watch failed; restarting", { error: String(err) }),
 * });
 * await configs.start(); // the first list is in configs.cache
 * ```
 * @module
 */
import type * as k8s from "@kubernetes/client-node";

export interface InformerOptions {
  /** Only objects matching this field selector (the list must use the same one). */
  fieldSelector?: string;
  /** Told about every failed list or watch; the informer restarts itself a second later. */
  onError?: (err: unknown) => void;
}

const RESTART_MS = 1000;

export class Informer<T extends k8s.KubernetesObject> {
  /** The cache and its events (`add`, `update`, `delete`). */
  readonly cache: k8s.ListWatch<T>;
  #stopped = false;
  #starting = false;
  #listFailed = false;
  #restart?: ReturnType<typeof setTimeout>;

  /** `client` is `@kubernetes/client-node` (the node runtime has its own: runtime/kube_watch.ts). */
  constructor(
    client: typeof k8s,
    kc: k8s.KubeConfig,
    path: string,
    list: () => Promise<k8s.KubernetesListObject<T>>,
    opts: InformerOptions = {},
  ) {
    const listed = async () => {
      try {
        return await list();
      } catch (err) {
        this.#listFailed = true;
        throw err;
      }
    };
    this.cache = new client.ListWatch<T>(
      path,
      new client.Watch(kc),
      listed,
      false,
      undefined,
      opts.fieldSelector,
    );
    this.cache.on("error", (err) => {
      if (this.#stopped) return;
      opts.onError?.(err);
      if (this.#starting && this.#listFailed) return; // start() lists again itself
      clearTimeout(this.#restart);
      this.#restart = setTimeout(() => {
        if (!this.#stopped) this.cache.start().catch((e) => opts.onError?.(e));
      }, RESTART_MS);
    });
  }

  /** Lists (again every second until a list succeeds), then watches. */
  async start(): Promise<void> {
    this.#stopped = false;
    this.#starting = true;
    try {
      while (!this.#stopped) {
        this.#listFailed = false;
        await this.cache.start();
        if (!this.#listFailed) return;
        await new Promise((r) => setTimeout(r, RESTART_MS));
      }
    } finally {
      this.#starting = false;
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restart);
    await this.cache.stop();
  }
}
