/**
 * Standalone mode, for one machine without an API server: the same Reconciler, fed by BpfProgramConfig
 * YAML/JSON files in a directory and driving the local node runtime. BpfPrograms live in memory (and are
 * written to `<status dir>/<name>.json` when a status directory is given, so a person can look at them).
 * Adding, editing or removing a file converges the node; a periodic resync repairs drift.
 *
 * @example
 * ```sh
 * deno task controller --standalone /etc/bpfd/programs --runtime unix:/run/bpfd/bpfd.sock
 * ```
 * @module
 */
import { loadAllYaml } from "@kubernetes/client-node";
import { type BpfProgram, BpfProgramConfig } from "../crds/schema.ts";
import type { Logger } from "../lib/log.ts";
import type { NodeCaller, NodeInfo } from "./node_client.ts";
import { WorkQueue } from "./queue.ts";
import { PullSecretError } from "./pull_secrets.ts";
import { type EventSpec, Reconciler, type Store } from "./reconciler.ts";

/** A Store in memory: configs from files, BpfPrograms kept here, one node. */
export class MemoryStore implements Store {
  #configs = new Map<string, BpfProgramConfig>();
  #programs = new Map<string, BpfProgram>();
  #rv = 0;
  readonly events: EventSpec[] = [];

  constructor(readonly localNode: NodeInfo, readonly statusDir?: string, readonly log?: Logger) {}

  #stamp<T extends { metadata: { resourceVersion?: string; uid?: string; generation?: number } }>(o: T): T {
    const copy = structuredClone(o);
    copy.metadata.resourceVersion = String(++this.#rv);
    copy.metadata.uid ??= crypto.randomUUID();
    return copy;
  }

  /** Replaces the configs (from the files); returns the names that changed, appeared or went. */
  setConfigs(configs: BpfProgramConfig[]): string[] {
    const changed: string[] = [];
    const next = new Map(configs.map((c) => [c.metadata.name, c]));
    for (const [name, old] of this.#configs) {
      if (!next.has(name)) {
        this.#configs.delete(name);
        changed.push(name);
      } else if (JSON.stringify(old.spec) !== JSON.stringify(next.get(name)!.spec)) {
        const c = next.get(name)!;
        this.#configs.set(
          name,
          this.#stamp({
            ...c,
            metadata: {
              ...c.metadata,
              uid: old.metadata.uid,
              generation: (old.metadata.generation ?? 1) + 1,
            },
            status: old.status,
          }),
        );
        changed.push(name);
      }
    }
    for (const [name, c] of next) {
      if (this.#configs.has(name)) continue;
      this.#configs.set(name, this.#stamp({ ...c, metadata: { ...c.metadata, generation: 1 } }));
      changed.push(name);
    }
    return changed;
  }

  configs() {
    return [...this.#configs.values()];
  }
  config(name: string) {
    return this.#configs.get(name);
  }
  nodes() {
    return [this.localNode];
  }
  node(name: string) {
    return name === this.localNode.name ? this.localNode : undefined;
  }
  programs() {
    return [...this.#programs.values()];
  }
  program(name: string) {
    return this.#programs.get(name);
  }

  async #persist(bp: BpfProgram | undefined, name: string) {
    if (!this.statusDir) return;
    const path = `${this.statusDir}/${name}.json`;
    if (bp) {
      await Deno.mkdir(this.statusDir, { recursive: true });
      await Deno.writeTextFile(`${path}.tmp`, JSON.stringify(bp, null, 2) + "\n");
      await Deno.rename(`${path}.tmp`, path);
    } else {
      await Deno.remove(path).catch(() => {});
    }
  }

  #check(
    obj: { metadata: { name: string; resourceVersion?: string } },
    cur: { metadata: { resourceVersion?: string } } | undefined,
  ) {
    if (!cur) throw Object.assign(new Error(`${obj.metadata.name} not found`), { code: 404 });
    if (obj.metadata.resourceVersion && obj.metadata.resourceVersion !== cur.metadata.resourceVersion) {
      throw Object.assign(new Error(`${obj.metadata.name}: conflict`), { code: 409 });
    }
  }

  async createProgram(obj: BpfProgram) {
    if (this.#programs.has(obj.metadata.name)) {
      throw Object.assign(new Error(`${obj.metadata.name} exists`), { code: 409 });
    }
    const bp = this.#stamp({
      ...obj,
      metadata: { ...obj.metadata, creationTimestamp: new Date().toISOString() },
    });
    this.#programs.set(bp.metadata.name, bp);
    await this.#persist(bp, bp.metadata.name);
    return bp;
  }
  async updateProgram(obj: BpfProgram) {
    const cur = this.#programs.get(obj.metadata.name);
    this.#check(obj, cur);
    const bp = this.#stamp({ ...obj, status: cur!.status });
    if (bp.metadata.deletionTimestamp && (bp.metadata.finalizers ?? []).length === 0) {
      this.#programs.delete(bp.metadata.name);
      await this.#persist(undefined, bp.metadata.name);
      return bp;
    }
    this.#programs.set(bp.metadata.name, bp);
    await this.#persist(bp, bp.metadata.name);
    return bp;
  }
  async updateProgramStatus(obj: BpfProgram) {
    const cur = this.#programs.get(obj.metadata.name);
    this.#check(obj, cur);
    const bp = this.#stamp({ ...cur!, status: obj.status });
    this.#programs.set(bp.metadata.name, bp);
    await this.#persist(bp, bp.metadata.name);
    return bp;
  }
  async deleteProgram(obj: BpfProgram) {
    const cur = this.#programs.get(obj.metadata.name);
    if (!cur) return;
    if ((cur.metadata.finalizers ?? []).length) {
      this.#programs.set(
        cur.metadata.name,
        this.#stamp({
          ...cur,
          metadata: { ...cur.metadata, deletionTimestamp: new Date().toISOString() },
        }),
      );
      return;
    }
    this.#programs.delete(cur.metadata.name);
    await this.#persist(undefined, cur.metadata.name);
  }
  updateConfig(obj: BpfProgramConfig) {
    // Files are the source of truth for configs; finalizers are not used in standalone mode.
    return Promise.resolve(this.#configs.get(obj.metadata.name) ?? obj);
  }
  updateConfigStatus(obj: BpfProgramConfig) {
    const cur = this.#configs.get(obj.metadata.name);
    if (!cur) return Promise.resolve(obj);
    const c = this.#stamp({ ...cur, status: obj.status });
    this.#configs.set(c.metadata.name, c);
    return Promise.resolve(c);
  }
  pullSecret(ref: { name: string; namespace?: string }): Promise<string> {
    return Promise.reject(
      new PullSecretError(
        `pull secret ${ref.name}: standalone mode reads no Secrets (give the node an authFile)`,
      ),
    );
  }

  event(e: EventSpec) {
    this.events.push(e);
    if (this.events.length > 200) this.events.shift();
    this.log?.[e.type === "Warning" ? "warn" : "info"]("event", { ...e });
    return Promise.resolve();
  }
}

/** Reads every *.yaml, *.yml and *.json file in `dir`: the valid BpfProgramConfigs, and what was wrong. */
export async function readConfigDir(
  dir: string,
): Promise<{ configs: BpfProgramConfig[]; problems: string[] }> {
  const configs: BpfProgramConfig[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /\.(ya?ml|json)$/.test(e.name) && !e.name.startsWith(".")) files.push(e.name);
  }
  for (const f of files.sort()) {
    let docs: unknown[];
    try {
      docs = loadAllYaml(await Deno.readTextFile(`${dir}/${f}`)) as unknown[];
    } catch (err) {
      problems.push(`${f}: ${(err as Error).message.split("\n")[0]}`);
      continue;
    }
    for (const [i, doc] of docs.entries()) {
      if (!doc) continue;
      const r = BpfProgramConfig.safeParse(doc);
      if (!r.success) {
        problems.push(
          `${f}${docs.length > 1 ? `#${i}` : ""}: ${
            r.error.issues.map((x) => `${x.path.join(".")}: ${x.message}`).join("; ")
          }`,
        );
        continue;
      }
      if (seen.has(r.data.metadata.name)) {
        problems.push(`${f}: ${r.data.metadata.name} is defined twice (ignored)`);
        continue;
      }
      seen.add(r.data.metadata.name);
      configs.push(r.data);
    }
  }
  return { configs, problems };
}

export interface StandaloneOptions {
  dir: string;
  node: NodeInfo;
  nodes: NodeCaller;
  log: Logger;
  resyncMs?: number;
  statusDir?: string;
  workers?: number;
}

/** Runs the reconciler on a directory of configs until stop(). */
export class Standalone {
  readonly store: MemoryStore;
  readonly queue = new WorkQueue({ baseDelayMs: 200, maxDelayMs: 10_000 });
  readonly reconciler: Reconciler;
  problems: string[] = [];
  #watcher?: Deno.FsWatcher;
  #resync?: ReturnType<typeof setInterval>;
  #workers?: Promise<void>;
  #reading: Promise<void> = Promise.resolve();
  #debounce?: ReturnType<typeof setTimeout>;

  constructor(readonly opts: StandaloneOptions) {
    this.store = new MemoryStore(opts.node, opts.statusDir, opts.log);
    this.reconciler = new Reconciler({
      store: this.store,
      nodes: opts.nodes,
      queue: this.queue,
      log: opts.log,
      configFinalizer: false,
    });
  }

  /** Reads the directory once and queues what changed. */
  rescan(): Promise<void> {
    this.#reading = this.#reading.then(async () => {
      const { configs, problems } = await readConfigDir(this.opts.dir);
      if (JSON.stringify(problems) !== JSON.stringify(this.problems)) {
        for (const p of problems) this.opts.log.warn("invalid config file", { problem: p });
      }
      this.problems = problems;
      for (const name of this.store.setConfigs(configs)) this.reconciler.configChanged(name);
    }).catch((err) => this.opts.log.error("reading configs", { dir: this.opts.dir, error: String(err) }));
    return this.#reading;
  }

  async start(): Promise<void> {
    await Deno.mkdir(this.opts.dir, { recursive: true });
    await this.rescan();
    this.#workers = this.queue.run(
      this.opts.workers ?? 4,
      (key) => this.reconciler.handle(key),
      (key, err, retryIn) => this.opts.log.warn("retrying", { key, retryInMs: retryIn, error: String(err) }),
    );
    this.#watcher = Deno.watchFs(this.opts.dir, { recursive: false });
    (async () => {
      for await (const _ of this.#watcher!) {
        clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => this.rescan(), 50);
      }
    })().catch(() => {});
    this.#resync = setInterval(() => {
      this.rescan().then(() => this.reconciler.resyncAll());
    }, this.opts.resyncMs ?? 30_000);
  }

  /** Resolves when the files read so far are converged (or failing with backoff). */
  async settled(): Promise<void> {
    await this.#reading;
    await this.queue.whenIdle();
  }

  async stop(): Promise<void> {
    clearInterval(this.#resync);
    clearTimeout(this.#debounce);
    this.#watcher?.close();
    this.queue.stop();
    await this.#workers;
    await this.reconciler.flushEvents();
    await this.#reading;
  }
}
