/**
 * Keeps the node's `BpfNodeInventory` current with few writes: program and link ids are compared every
 * second; a snapshot is taken when they changed (or every `fullSeconds`, for holders and pods) and written
 * only when its content changed, at most once per `minWriteSeconds`. A failed write (API server away) is
 * retried with backoff from the newest snapshot. Events are written once per program bpfd does not manage
 * that appears on one of its hooks; errors are logged, never thrown.
 *
 * @example
 * ```ts
 * const publisher = new InventoryPublisher(node, api, { nodeName: "node-a" }, log);
 * publisher.start();
 * ```
 * @module
 */
import { linkIds, programIds } from "../ffi/libbpf.ts";
import type { BpfNodeInventorySpec } from "../model/inventory.ts";
import type { Logger } from "../lib/log.ts";
import type { Node } from "./ctx.ts";
import { type InventorySnapshot, type PodRef, takeInventory } from "./inventory.ts";

/** What the publisher needs from the API server (runtime/inventory_kube.ts; a fake in unit tests). */
export interface InventoryApi {
  /** Creates or replaces this node's object; resolves when the API server has it. */
  write(spec: BpfNodeInventorySpec): Promise<void>;
  /** Records an Event on this node's Node object. */
  event(e: { reason: string; message: string; key: string }): Promise<void>;
  /** The pods on this node, by pod UID and by container id. */
  pods(): Promise<Map<string, PodRef>>;
}

/** Timing of the publisher (seconds). */
export interface PublishOptions {
  nodeName: string;
  minWriteSeconds?: number;
  fullSeconds?: number;
  pollSeconds?: number;
  maxBytes?: number;
  holders?: boolean;
  /** What changes when programs or links come and go (default: the kernel's program and link ids). */
  fingerprint?: () => string;
  /** Takes a snapshot (default: runtime/inventory.ts on the node). */
  take?: (podOf: (key: string) => PodRef | undefined) => Promise<InventorySnapshot>;
}

const kernelFingerprint = () => `${programIds().join(",")}|${linkIds().join(",")}`;

/** `p`, or a rejection after `ms` (the API client has no deadline of its own). */
function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A hash of a spec's content without its timestamp, to tell whether anything changed. */
async function contentKey(spec: BpfNodeInventorySpec): Promise<string> {
  const { observedAt: _observedAt, ...rest } = spec;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(JSON.stringify(rest)));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The publisher of one node's inventory. */
export class InventoryPublisher {
  /** Writes that reached the API server. */
  writes = 0;
  /** The last snapshot taken. */
  last?: InventorySnapshot;
  #written?: string;
  #lastKey?: string;
  #fingerprint = "";
  #lastFull = -Infinity;
  #lastWrite = -Infinity;
  #failures = 0;
  #retryAt = 0;
  #pods = new Map<string, PodRef>();
  /** A holder in a container was not among the pods listed (a pod just started): look again sooner. */
  #unknownHolder = false;

  /** Seconds between full snapshots and pod lists. */
  #fullEvery(): number {
    return this.#unknownHolder ? 5 : this.opts.fullSeconds ?? 30;
  }
  #podsAt = 0;
  #events = new Set<string>();
  #timer?: ReturnType<typeof setTimeout>;
  #running?: Promise<void>;
  #stopped = false;

  constructor(
    readonly node: Node | undefined,
    readonly api: InventoryApi,
    readonly opts: PublishOptions,
    readonly log: Logger,
  ) {}

  /** Starts the loop. */
  start(): void {
    this.#schedule(0);
  }

  /** Stops the loop and waits for a write in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.tick().catch((err) =>
        this.log.warn("inventory: tick failed", { error: String(err) })
      )
        .finally(() => this.#schedule((this.opts.pollSeconds ?? 1) * 1000));
    }, ms);
  }

  /** One round: snapshot if something may have changed, write if it did and the pace allows. */
  async tick(now = Date.now()): Promise<void> {
    const fingerprint = (this.opts.fingerprint ?? kernelFingerprint)();
    const pending = this.#written === undefined || this.#lastKey !== this.#written;
    const due = fingerprint !== this.#fingerprint || now - this.#lastFull >= this.#fullEvery() * 1000;
    if (!due && !pending) return;
    if (now - this.#lastWrite < (this.opts.minWriteSeconds ?? 5) * 1000 || now < this.#retryAt) return;
    if (due) {
      await this.#refreshPods(now);
      const podOf = (key: string) => this.#pods.get(key);
      this.last = this.opts.take ? await this.opts.take(podOf) : await takeInventory(this.node!, {
        nodeName: this.opts.nodeName,
        podOf,
        maxBytes: this.opts.maxBytes,
        holders: this.opts.holders,
      });
      this.#lastKey = await contentKey(this.last.spec);
      this.#unknownHolder = this.last.spec.programs.some((p) =>
        p.holders?.some((h) => (h.containerId || h.podUid) && !h.pod)
      );
      this.#fingerprint = fingerprint;
      this.#lastFull = now;
    }
    const snap = this.last!;
    await this.#emitEvents(snap);
    const key = this.#lastKey;
    if (key === this.#written) return;
    try {
      await deadline(this.api.write(snap.spec), 15_000, "write");
      this.#written = key;
      this.#lastWrite = now;
      this.writes++;
      if (this.#failures) this.log.info("inventory: written again", { after: this.#failures });
      this.#failures = 0;
      if (snap.spec.omitted) {
        this.log.warn("inventory: programs omitted to fit the object size limit", {
          omitted: snap.spec.omitted,
        });
      }
    } catch (err) {
      this.#failures++;
      this.#retryAt = now + Math.min(30_000, 1000 * 2 ** Math.min(this.#failures, 5));
      this.log[this.#failures === 1 ? "warn" : "debug"]("inventory: write failed; will retry", {
        error: (err as Error).message ?? String(err),
        failures: this.#failures,
      });
    }
  }

  async #refreshPods(now: number): Promise<void> {
    if (now - this.#podsAt < this.#fullEvery() * 1000 && this.#podsAt) return;
    try {
      this.#pods = await deadline(this.api.pods(), 10_000, "list pods");
      this.#podsAt = now;
    } catch (err) {
      this.log.debug("inventory: pods not listed", { error: (err as Error).message });
    }
  }

  async #emitEvents(snap: InventorySnapshot): Promise<void> {
    const present = new Set<string>();
    for (const i of snap.intruders) {
      const key = `${i.hook}|${i.programId}`;
      present.add(key);
      if (this.#events.has(key)) continue;
      try {
        await deadline(
          this.api.event({
            reason: "UnmanagedProgramOnHook",
            message:
              `program ${i.programId} (${i.name}), not loaded through bpfd, runs on ${i.hook} where bpfd ` +
              `manages a chain`,
            key,
          }),
          10_000,
          "event",
        );
        this.#events.add(key);
      } catch (err) {
        this.log.debug("inventory: event not written", { error: (err as Error).message });
      }
    }
    for (const key of this.#events) if (!present.has(key)) this.#events.delete(key);
  }
}
