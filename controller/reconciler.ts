/**
 * The controller's logic, the same for a cluster (controller/kube.ts) and for standalone mode
 * (controller/standalone.ts): it reads desired state (BpfProgramConfigs, Nodes) and actual state
 * (BpfPrograms, what the node reports) from a `Store`, converges through the node's `reconcile` function,
 * and writes back only what changed.
 *
 * Work items (keys of a WorkQueue):
 * - `config:<name>` — a config changed: its finalizer, and one `pair` per node it selects or has a
 *   BpfProgram on;
 * - `pair:<config>/<node>` — one BpfProgram `<config>-<node>`: loaded on the node when the node is
 *   selected, then created with what the node reported (label `owningConfig`, owner reference, finalizer
 *   `bpfd.io.agent/finalizer`, spec.programs); unloaded on the node, its finalizer removed and deleted
 *   when not (config gone or deleting, node no longer matching); spec.programs and the `Loaded` condition
 *   written when they change;
 * - `summary:<name>` — the config's status: how many selected nodes are loaded / failing, and a `Loaded`
 *   condition; the config's own finalizer goes once no BpfProgram of it is left.
 *
 * @module
 */
import {
  type BpfProgram,
  type BpfProgramConfig,
  type Condition,
  CONFIG_FINALIZER,
  FINALIZER,
  type ProgramState,
  selectorMatches,
} from "../crds/schema.ts";
import type { Logger } from "../lib/log.ts";
import { type NodeCaller, NodeError, type NodeInfo } from "./node_client.ts";
import {
  isDeleting,
  jsonEqual,
  LOADED,
  LOADED_MESSAGE,
  newProgram,
  pairOf,
  programName,
  REASON_LOADED,
  REASON_NOT_LOADED,
} from "./objects.ts";
import { PullSecretError, PullSecrets } from "./pull_secrets.ts";
import type { WorkQueue } from "./queue.ts";
import { retire } from "./retire.ts";
import { Rollout } from "./rollout.ts";
import type { ReconcilerStats, Store } from "./store.ts";
import { writeSummary } from "./summary.ts";
import { type ReconcileContext, Writer } from "./writer.ts";

/** A config's status is written at most this often while its nodes answer. */
const SUMMARY_DELAY_MS = 200;
/** A node held back by the roll-out is asked again after this long at the latest. */
const ROLLOUT_RETRY_MS = 5_000;

export type { NodeInfo };

export type { EventSpec, ReconcilerStats, Store } from "./store.ts";

export interface ReconcilerOptions {
  store: Store;
  nodes: NodeCaller;
  queue: WorkQueue;
  log: Logger;
  /** Whether configs get the controller's finalizer (deletion waits until every node unloaded). */
  configFinalizer?: boolean;
  /** More conditions for a config's status (the controller's `PolicyAllowed`). */
  conditions?: (cfg: BpfProgramConfig) => Omit<Condition, "lastTransitionTime">[];
}

export class Reconciler {
  /** Counters a benchmark or a test can read. */
  get stats(): ReconcilerStats {
    return this.writer.stats;
  }
  readonly store: Store;
  readonly queue: WorkQueue;
  log: Logger;
  #nodes: NodeCaller;
  #configFinalizer: boolean;
  #conditions: ReconcilerOptions["conditions"];
  /** Counted writes and Events. */
  readonly writer: Writer;
  #ctx: ReconcileContext;
  /** Paces bytecode roll-outs (max unavailable per config). */
  readonly rollout = new Rollout();
  #selected = new Map<string, number>();
  /**
   * Per deleting config: selected nodes with no BpfProgram of it, asked to unload by name before the
   * config's finalizer goes (a first load answered just before the controller stopped has none).
   */
  #sweeping = new Map<string, Set<string>>();
  /** Each node's labels and address as last seen. */
  #nodeKeys = new Map<string, string>();
  #secrets: PullSecrets;

  constructor(opts: ReconcilerOptions) {
    this.store = opts.store;
    this.writer = new Writer(opts.store, () => this.log);
    this.#ctx = { store: opts.store, nodes: opts.nodes, writer: this.writer, log: () => this.log };
    this.#secrets = new PullSecrets((ref) => opts.store.pullSecret(ref));
    this.#nodes = opts.nodes;
    this.queue = opts.queue;
    this.log = opts.log;
    this.#configFinalizer = opts.configFinalizer ?? true;
    this.#conditions = opts.conditions;
  }

  // ---- what to queue when something changes ----

  /** A config was added, changed or deleted. */
  configChanged(name: string): void {
    this.queue.add(`config:${name}`);
  }

  /** A node was added, changed or deleted: every config may select or drop it. */
  nodeChanged(name: string): void {
    // Status updates (kubelet heartbeats every 10 s per node) change neither labels nor address: no work.
    const node = this.store.node(name);
    const key = node ? JSON.stringify([node.labels, node.address]) : undefined;
    if (key !== undefined && this.#nodeKeys.get(name) === key) return;
    if (key === undefined) this.#nodeKeys.delete(name);
    else this.#nodeKeys.set(name, key);
    this.#selected.clear();
    for (const c of this.store.configs()) this.queue.add(`pair:${c.metadata.name}/${name}`);
    for (const bp of this.store.programs()) {
      const p = pairOf(bp);
      if (p?.node === name) this.queue.add(`pair:${p.config}/${p.node}`);
    }
  }

  /** A BpfProgram changed or went (possibly by someone else's hand): check it against its config. */
  programChanged(bp: BpfProgram): void {
    const p = pairOf(bp);
    if (p) this.queue.add(`pair:${p.config}/${p.node}`);
  }

  /** Everything again (start, leadership won, periodic resync, settings changed). */
  resyncAll(): void {
    this.log.debug("resync", { configs: this.store.configs().length, queued: this.queue.length });
    // A config fans out to its pairs; BpfPrograms of configs that are gone are queued directly.
    for (const c of this.store.configs()) this.configChanged(c.metadata.name);
    for (const bp of this.store.programs()) {
      const p = pairOf(bp);
      if (p && !this.store.config(p.config)) this.queue.add(`pair:${p.config}/${p.node}`);
    }
  }

  /** Handles one work item. Throws to have it retried with backoff. */
  async handle(key: string): Promise<void> {
    const colon = key.indexOf(":");
    const kind = key.slice(0, colon), rest = key.slice(colon + 1);
    if (kind === "config") return await this.reconcileConfig(rest);
    if (kind === "summary") return await this.reconcileSummary(rest);
    if (kind === "pair") {
      const slash = rest.indexOf("/");
      return await this.reconcilePair(rest.slice(0, slash), rest.slice(slash + 1));
    }
    throw new Error(`unknown work item ${key}`);
  }

  // ---- config: finalizer and fan-out ----

  async reconcileConfig(name: string): Promise<void> {
    let cfg = this.store.config(name);
    const mine = this.store.programs().filter((bp) => pairOf(bp)?.config === name);
    for (const bp of mine) this.queue.add(`pair:${name}/${pairOf(bp)!.node}`);
    if (!cfg) {
      this.rollout.forget(name);
      this.#selected.delete(name);
      this.#sweeping.delete(name);
      return;
    }
    if (isDeleting(cfg)) {
      const have = new Set(mine.map((bp) => pairOf(bp)!.node));
      const sweep = this.store.nodes()
        .filter((n) => !have.has(n.name) && selectorMatches(cfg!.spec.nodeselector, n.labels))
        .map((n) => n.name);
      this.#sweeping.set(name, new Set(sweep));
      for (const n of sweep) this.queue.add(`pair:${name}/${n}`);
    } else {
      this.#sweeping.delete(name);
      if (this.#configFinalizer && !(cfg.metadata.finalizers ?? []).includes(CONFIG_FINALIZER)) {
        cfg = await this.writer.write(() =>
          this.store.updateConfig({
            ...cfg!,
            metadata: {
              ...cfg!.metadata,
              finalizers: [...(cfg!.metadata.finalizers ?? []), CONFIG_FINALIZER],
            },
          })
        );
      }
      let selected = 0;
      for (const n of this.store.nodes()) {
        if (!selectorMatches(cfg.spec.nodeselector, n.labels)) continue;
        selected++;
        this.queue.add(`pair:${name}/${n.name}`);
      }
      this.#selected.set(name, selected);
    }
    this.queue.add(`summary:${name}`);
  }

  // ---- one config on one node ----

  async reconcilePair(configName: string, nodeName: string): Promise<void> {
    const cfg = this.store.config(configName);
    const node = this.store.node(nodeName);
    const name = programName(configName, nodeName);
    let bp = this.store.program(name);
    const selected = !!cfg && !isDeleting(cfg) && !!node &&
      selectorMatches(cfg.spec.nodeselector, node.labels);

    if (!selected || isDeleting(bp)) {
      const sweeping = this.#sweeping.get(configName);
      if (bp) {
        await retire(this.#ctx, bp, {
          cfg,
          node,
          why: selected ? "deleted" : cfg && !isDeleting(cfg) ? "unselected" : "gone",
        });
      } else if (node && sweeping?.has(nodeName)) {
        // No BpfProgram, yet something may be loaded for it: unload by name (no write).
        this.writer.stats.nodeCalls++;
        await this.#nodes.reconcile(node, { name, spec: null });
      }
      sweeping?.delete(nodeName);
      if (cfg) this.queue.add(`summary:${configName}`);
      return;
    }

    // Selected. A new BpfProgram is created once the node answered, with its finalizer and spec.programs in
    // the one write (a deletion meanwhile finds it: the config's finalizer waits for the sweep above).
    if (bp) {
      // Someone removed the finalizer or labels, or the config was re-created (new uid): put them back.
      const fixed = newProgram(cfg!, nodeName, name);
      const owner = bp.metadata.ownerReferences?.find((r) => r.kind === "BpfProgramConfig");
      const labels = { ...bp.metadata.labels, ...fixed.metadata.labels };
      if (
        !(bp.metadata.finalizers ?? []).includes(FINALIZER) || !jsonEqual(labels, bp.metadata.labels ?? {}) ||
        (cfg!.metadata.uid && owner?.uid !== cfg!.metadata.uid)
      ) {
        const cur = bp;
        bp = await this.writer.write(() =>
          this.store.updateProgram({
            ...cur,
            metadata: {
              ...cur.metadata,
              labels,
              finalizers: [...new Set([...(cur.metadata.finalizers ?? []), FINALIZER])],
              ownerReferences: fixed.metadata.ownerReferences ?? cur.metadata.ownerReferences,
            },
          })
        );
      }
    }

    let programs: Record<string, ProgramState> | undefined;
    let failure: NodeError | undefined;
    let waiting: string | undefined;
    const spec = cfg!.spec;
    const slot = this.rollout.acquire(configName, nodeName, {
      selected: this.#selectedCount(cfg!),
      maxUnavailable: spec.rollout?.maxunavailable,
    });
    try {
      const pullSecret = await this.#pullSecret(cfg!);
      this.writer.stats.nodeCalls++;
      const out = await this.#nodes.reconcile(node!, {
        name,
        config: configName,
        spec,
        ...(spec.mapowner ? { mapOwner: programName(spec.mapowner, nodeName) } : {}),
        ...(pullSecret ? { pullSecret } : {}),
        allowReload: slot,
      });
      programs = out.programs;
      waiting = out.waiting;
      if (out.changed) {
        this.log.info("node converged", { bpfProgram: name, node: nodeName, actions: out.actions });
      }
    } catch (err) {
      if (!(err instanceof PullSecretError)) this.writer.stats.nodeErrors++;
      failure = err instanceof NodeError ? err : new NodeError(0, String((err as Error)?.message ?? err));
      // What ran before stays on the node when a change fails (make-before-break): spec.programs too.
    } finally {
      const next = slot ? this.rollout.release(configName, nodeName, !!failure) : undefined;
      if (!slot) this.rollout.setFailing(configName, nodeName, !!failure);
      if (next !== undefined) this.queue.add(`pair:${configName}/${next}`);
    }
    // Held back by the roll-out: the old version runs (still Loaded: no status write for the wait, the
    // config's status.digests shows the progress). Asked again when a slot is released, or after a while.
    if (waiting) {
      this.rollout.wait(configName, nodeName);
      this.queue.addAfter(`pair:${configName}/${nodeName}`, ROLLOUT_RETRY_MS);
    }

    if (!bp) {
      const created = newProgram(cfg!, nodeName, name);
      created.spec.programs = programs ?? {};
      bp = await this.writer.write(() => this.store.createProgram(created));
      // The config went, or stopped selecting the node, while the node loaded: let it go next.
      const now = this.store.config(configName), on = this.store.node(nodeName);
      if (!now || isDeleting(now) || !on || !selectorMatches(now.spec.nodeselector, on.labels)) {
        this.queue.add(`pair:${configName}/${nodeName}`);
      }
    } else if (programs !== undefined && !jsonEqual(bp.spec.programs ?? {}, programs)) {
      const cur = bp;
      bp = await this.writer.write(() =>
        this.store.updateProgram({ ...cur, spec: { ...cur.spec, programs } })
      );
    }
    const kept = Object.keys(bp.spec.programs ?? {}).length > 0;
    const cond = failure
      ? {
        type: LOADED,
        status: "False" as const,
        reason: REASON_NOT_LOADED,
        message: kept ? `${failure.message}; the previous version keeps running` : failure.message,
      }
      : {
        type: LOADED,
        status: "True" as const,
        reason: REASON_LOADED,
        message: LOADED_MESSAGE,
      };
    await this.writer.setProgramCondition(bp, cond);
    // Summed up a moment later: one status write for many nodes' answers, not one per node.
    this.queue.addAfter(`summary:${configName}`, SUMMARY_DELAY_MS);
    if (failure) throw failure;
  }

  /** How many nodes `cfg` selects (kept per config by reconcileConfig; counted when unknown). */
  #selectedCount(cfg: BpfProgramConfig): number {
    const name = cfg.metadata.name;
    let n = this.#selected.get(name);
    if (n === undefined) {
      n = this.store.nodes().filter((x) => selectorMatches(cfg.spec.nodeselector, x.labels)).length;
      this.#selected.set(name, n);
    }
    return n;
  }

  /** The config's pull secret as the node needs it, read through the store (cached briefly). */
  async #pullSecret(cfg: BpfProgramConfig): Promise<{ dockerConfigJson: string } | undefined> {
    const ref = cfg.spec.bytecode.imagepullsecret;
    if (!ref || cfg.spec.bytecode.imageurl === undefined) return undefined;
    return { dockerConfigJson: await this.#secrets.get(ref) };
  }

  /** Waits for Events still being written. */
  flushEvents(): Promise<void> {
    return this.writer.flushEvents();
  }

  /** A config's status: counts, failing nodes, digests, its Loaded condition (see summary.ts). */
  reconcileSummary(name: string): Promise<void> {
    // A deleting config keeps its finalizer until every node was swept (the pairs queue it again).
    if (this.#sweeping.get(name)?.size) return Promise.resolve();
    return writeSummary(this.#ctx, name, this.#conditions);
  }
}
