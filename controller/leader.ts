/**
 * Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: the holder
 * renews `renewTime` every `retryPeriod`; a candidate takes the Lease over only once it has not been
 * renewed for `leaseDuration`; every write carries the resourceVersion it read, so two candidates can
 * never both win. A leader that cannot renew within `renewDeadline` stops leading (before anyone else
 * can take over), so two replicas never act at once.
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import type { Logger } from "../lib/log.ts";

export interface LeaderOptions {
  kc: k8s.KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: () => Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

/** RFC 3339 with microseconds, as metav1.MicroTime wants it. */
function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

interface LeaseLike {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: unknown;
    renewTime?: unknown;
    leaseTransitions?: number;
  };
}

export class LeaderElector {
  #api: k8s.CoordinationV1Api;
  #leading = false;
  #stopped = false;
  #lastRenew = 0;
  #timer?: ReturnType<typeof setTimeout>;
  /** When this candidate first saw the current holder's record unchanged (observed time, not clocks). */
  #observed?: { key: string; at: number };
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  /** Lease writes made (for benchmarks). */
  writes = 0;

  constructor(readonly opts: LeaderOptions) {
    this.#api = opts.kc.makeApiClient(k8s.CoordinationV1Api);
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
  }

  get leading(): boolean {
    return this.#leading;
  }

  /**
   * Whether this replica may act right now: it leads and renewed within the renew deadline by its own
   * clock. A process that was stopped (SIGSTOP, a long GC pause, a frozen VM) wakes up with its timers
   * firing in any order; this check keeps it from acting on a Lease another replica may already hold.
   */
  valid(): boolean {
    return this.#leading && Date.now() - this.#lastRenew < this.renewDeadlineMs;
  }

  start(): void {
    this.#stopped = false;
    this.#tick();
  }

  /** Stops campaigning; a leader gives the Lease up (holder cleared) so another replica takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (this.#leading) {
      this.#setLeading(false);
      try {
        const lease = await this.#read();
        if (lease?.spec?.holderIdentity === this.opts.identity) {
          lease.spec = { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime() };
          this.writes++;
          await this.#api.replaceNamespacedLease({
            name: this.opts.name,
            namespace: this.opts.namespace,
            body: lease as unknown as k8s.V1Lease,
          });
        }
      } catch { /* best effort */ }
    }
  }

  #setLeading(v: boolean) {
    if (v === this.#leading) return;
    this.#leading = v;
    this.opts.log().info(v ? "leading" : "stopped leading", {
      lease: this.opts.name,
      identity: this.opts.identity,
    });
    if (v) this.opts.onStartedLeading();
    else this.opts.onStoppedLeading();
  }

  async #read(): Promise<LeaseLike | undefined> {
    try {
      return await this.#api.readNamespacedLease({
        name: this.opts.name,
        namespace: this.opts.namespace,
      }) as LeaseLike;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const now = Date.now();
    const lease = await this.#read();
    const spec = {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      renewTime: microTime(),
    };
    if (!lease) {
      this.writes++;
      await this.#api.createNamespacedLease({
        namespace: this.opts.namespace,
        body: {
          metadata: { name: this.opts.name, namespace: this.opts.namespace },
          spec: { ...spec, acquireTime: microTime(), leaseTransitions: 0 } as unknown as k8s.V1LeaseSpec,
        },
      });
      return true;
    }
    const holder = lease.spec?.holderIdentity ?? "";
    const key = `${holder}|${String(lease.spec?.renewTime)}|${lease.metadata?.resourceVersion}`;
    if (holder && holder !== this.opts.identity) {
      // Someone else holds it: wait until its record has stood still for a whole lease duration.
      if (this.#observed?.key !== key) this.#observed = { key, at: now };
      const duration = (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
      if (now - this.#observed.at < duration) return false;
    }
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === this.opts.identity ? 0 : 1);
    const body = {
      ...lease,
      spec: {
        ...lease.spec,
        ...spec,
        acquireTime: holder === this.opts.identity ? lease.spec?.acquireTime : microTime(),
        leaseTransitions: transitions,
      },
    };
    this.writes++;
    await this.#api.replaceNamespacedLease({
      name: this.opts.name,
      namespace: this.opts.namespace,
      body: body as unknown as k8s.V1Lease,
    });
    return true;
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    let ok = false;
    try {
      ok = await this.#tryAcquireOrRenew();
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code !== 409) this.opts.log().warn("lease", { error: String((err as Error).message ?? err) });
    }
    if (this.#stopped) return;
    if (ok) {
      this.#lastRenew = Date.now();
      this.#setLeading(true);
    } else if (this.#leading && Date.now() - this.#lastRenew > this.renewDeadlineMs) {
      this.#setLeading(false);
    } else if (this.#leading && !ok) {
      // A failed renewal within the deadline: keep leading, try again soon.
    }
    this.#timer = setTimeout(() => this.#tick(), this.retryPeriodMs);
  }
}
