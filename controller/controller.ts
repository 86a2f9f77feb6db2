/**
 * The cluster controller, put together: informers (KubeStore) feed a WorkQueue; while this replica holds
 * the Lease, workers run the Reconciler, which calls node runtimes over HTTP; a periodic resync queues
 * everything again (repairing drift: a program unloaded behind bpfd's back, a node runtime restarted);
 * the bpfd-config ConfigMap is read at start and whenever it changes.
 *
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import { Logger } from "../lib/log.ts";
import { KubeStore } from "./kube.ts";
import { LeaderElector } from "./leader.ts";
import { HttpNodeCaller, type NodeCaller } from "./node_client.ts";
import { WorkQueue } from "./queue.ts";
import { Reconciler } from "./reconciler.ts";
import { CONFIGMAP_NAME, DEFAULT_NAMESPACE, parseSettings, type Settings } from "./settings.ts";
import type { EffectivePolicy } from "../policy/evaluate.ts";
import { PolicyGate } from "./policy_gate.ts";

export interface ControllerOptions {
  kc: k8s.KubeConfig;
  namespace?: string;
  /** This replica's identity (Lease holder, Events). */
  identity?: string;
  workers?: number;
  /** Lease-based leader election (default on). */
  leaderElection?: boolean;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Overrides the ConfigMap's resync interval (tests). */
  resyncMs?: number;
  /** Retry backoff (ms): first delay and cap. */
  backoffMs?: { base: number; max: number };
  /** How to call nodes (default: HTTP). */
  nodes?: NodeCaller;
  logLevel?: Settings["bpfd.log.level"];
  /** Enforce BpfPolicy (controller/policy_gate.ts): requesters to the nodes, `PolicyAllowed` conditions. */
  policy?: () => EffectivePolicy;
  /** On a lost Lease: exit the process (default, as client-go does) or only stop this controller. */
  exitOnLostLeadership?: boolean;
}

export class Controller {
  readonly namespace: string;
  readonly identity: string;
  readonly store: KubeStore;
  readonly queue: WorkQueue;
  readonly reconciler: Reconciler;
  readonly leader?: LeaderElector;
  settings: Settings;
  log: Logger;
  /** Told how long each reconcile took and whether it failed (controller/metrics.ts). */
  onReconciled?: (ms: number, failed: boolean) => void;
  #nodes: NodeCaller;
  #workers?: Promise<void>;
  #resync?: ReturnType<typeof setInterval>;
  #settingsKey = "";
  #stopped = false;

  constructor(readonly opts: ControllerOptions) {
    this.namespace = opts.namespace ?? DEFAULT_NAMESPACE;
    this.identity = opts.identity ?? `${Deno.hostname()}-${Deno.pid}`;
    this.settings = parseSettings({}).settings;
    this.log = new Logger(opts.logLevel ?? "info", { component: "controller", id: this.identity });
    this.#nodes = opts.nodes ?? new HttpNodeCaller(this.settings["bpfd.node.timeout.seconds"] * 1000);
    this.queue = new WorkQueue({ baseDelayMs: opts.backoffMs?.base, maxDelayMs: opts.backoffMs?.max });
    this.store = new KubeStore({
      kc: opts.kc,
      namespace: this.namespace,
      identity: this.identity,
      nodePort: () => this.settings["bpfd.node.port"],
      log: () => this.log,
    }, {
      config: (name) => this.reconciler.configChanged(name),
      program: (bp) => this.reconciler.programChanged(bp),
      node: (name) => this.reconciler.nodeChanged(name),
      settings: (data) => this.#applySettings(data),
    });
    const gate = opts.policy &&
      new PolicyGate(this.#nodes, {
        policy: opts.policy,
        store: () => this.store,
        log: () => this.log,
        event: (e) => this.store.event(e),
      });
    this.reconciler = new Reconciler({
      store: this.store,
      nodes: gate ?? this.#nodes,
      conditions: gate && ((cfg) => [gate.condition(cfg)]),
      queue: this.queue,
      log: this.log,
    });
    if (opts.leaderElection ?? true) {
      this.leader = new LeaderElector({
        kc: opts.kc,
        namespace: this.namespace,
        name: "bpfd-controller",
        identity: this.identity,
        leaseDurationMs: opts.leaseDurationMs,
        renewDeadlineMs: opts.renewDeadlineMs,
        retryPeriodMs: opts.retryPeriodMs,
        log: () => this.log,
        onStartedLeading: () => this.#lead(),
        onStoppedLeading: () => this.#follow(),
      });
    }
  }

  #applySettings(data: Record<string, string> | undefined) {
    const key = JSON.stringify(data ?? null);
    if (key === this.#settingsKey) return;
    this.#settingsKey = key;
    const { settings, problems } = parseSettings(data);
    const before = this.settings;
    this.settings = settings;
    if (!this.opts.logLevel) {
      this.log = new Logger(settings["bpfd.log.level"], { component: "controller", id: this.identity });
      this.reconciler.log = this.log;
    }
    if (this.#nodes instanceof HttpNodeCaller) {
      this.#nodes.timeoutMs = settings["bpfd.node.timeout.seconds"] * 1000;
    }
    this.log.info("settings", {
      configMap: `${this.namespace}/${CONFIGMAP_NAME}`,
      found: data !== undefined,
      settings,
      ...(problems.length ? { problems } : {}),
    });
    if (before["bpfd.resync.seconds"] !== settings["bpfd.resync.seconds"] && this.#resync) {
      this.#startResync();
    }
    if (before["bpfd.node.port"] !== settings["bpfd.node.port"]) this.reconciler.resyncAll();
  }

  #startResync() {
    clearInterval(this.#resync);
    const ms = this.opts.resyncMs ?? this.settings["bpfd.resync.seconds"] * 1000;
    this.#resync = setInterval(() => {
      if (!this.leader || this.leader.leading) this.reconciler.resyncAll();
    }, ms);
  }

  /** Starts the caches, then campaigns for the Lease (or leads at once without leader election). */
  async start(): Promise<void> {
    await this.store.start();
    this.#applySettings(this.store.settingsData());
    this.#startResync();
    if (this.leader) this.leader.start();
    else this.#lead();
  }

  #lead() {
    if (this.#stopped || this.#workers) return;
    this.log.info("reconciling", { workers: this.opts.workers ?? 16 });
    this.reconciler.resyncAll();
    const queue = this.queue;
    this.#workers = queue.run(
      this.opts.workers ?? 16,
      (key) => {
        // No Lease, no work: a stale leader drops the item (whoever leads resyncs everything anyway).
        if (this.leader && !this.leader.valid()) {
          this.log.warn("not acting: leadership not confirmed within the renew deadline", { key });
          return Promise.resolve();
        }
        const started = performance.now();
        return this.reconciler.handle(key).then(
          () => this.onReconciled?.(performance.now() - started, false),
          (err) => {
            this.onReconciled?.(performance.now() - started, true);
            throw err;
          },
        );
      },
      (key, err, retryIn) => {
        const e = err as { code?: number; message?: string; body?: unknown };
        const conflict = e.code === 409;
        this.log[conflict ? "debug" : "warn"]("retrying", {
          key,
          retryInMs: retryIn,
          error: String(e.message ?? err).slice(0, 500),
        });
      },
    );
  }

  #follow() {
    // Lost the Lease: stop acting at once. A fresh queue waits for the next leadership.
    const exit = this.opts.exitOnLostLeadership ?? true;
    this.log.warn(`lost leadership; ${exit ? "exiting so a fresh replica can take over" : "stopping"}`);
    this.stop().finally(() => exit && Deno.exit(1));
  }

  /** Waits until the work queue is idle (tests, benchmarks). */
  whenIdle(): Promise<void> {
    return this.queue.whenIdle();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#resync);
    this.queue.stop();
    await this.leader?.stop();
    await this.#workers;
    await this.reconciler.flushEvents();
    await this.store.stop();
    if (this.#nodes instanceof HttpNodeCaller) this.#nodes.close();
  }
}
