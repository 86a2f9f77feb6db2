/**
 * The controller's writes, in one place: each API write counted, Events recorded without holding up a
 * reconcile, and a BpfProgram's condition written only when it changes (with a Warning Event for a new
 * failure). Shared by the reconciler, retire.ts and summary.ts through a `ReconcileContext`.
 *
 * @example
 * ```ts
 * const writer = new Writer(store, () => log);
 * await writer.setProgramCondition(bp, { type: "Loaded", status: "True", reason: "bpfdLoaded", message });
 * ```
 * @module
 */
import type { BpfProgram, Condition } from "../crds/schema.ts";
import type { Logger } from "../lib/log.ts";
import type { NodeCaller } from "./node_client.ts";
import { jsonEqual, setCondition } from "./objects.ts";
import type { EventSpec, ReconcilerStats, Store } from "./store.ts";

/** What the pieces of the controller's logic share. */
export interface ReconcileContext {
  store: Store;
  nodes: NodeCaller;
  writer: Writer;
  log: () => Logger;
}

/** Counted writes and best-effort Events. */
export class Writer {
  readonly stats: ReconcilerStats = { nodeCalls: 0, nodeErrors: 0, writes: 0, events: 0 };
  #pendingEvents = new Set<Promise<void>>();

  constructor(readonly store: Store, readonly log: () => Logger) {}

  /** Runs one API write, counted. */
  async write<T>(fn: () => Promise<T>): Promise<T> {
    this.stats.writes++;
    return await fn();
  }

  /** Records an Event without holding up the reconcile (Events are best effort, as in client-go). */
  event(e: EventSpec): Promise<void> {
    this.stats.events++;
    const p = this.store.event(e).catch((err) =>
      this.log().warn("event not recorded", { event: e, error: String(err) })
    ).finally(() => this.#pendingEvents.delete(p));
    this.#pendingEvents.add(p);
    return Promise.resolve();
  }

  /** Waits for Events still being written. */
  async flushEvents(): Promise<void> {
    await Promise.all([...this.#pendingEvents]);
  }

  /** Sets a BpfProgram's condition when it differs; a new failure also gets a Warning Event. */
  async setProgramCondition(
    bp: BpfProgram,
    cond: Omit<Condition, "lastTransitionTime">,
  ): Promise<BpfProgram> {
    const conditions = setCondition(bp.status?.conditions, cond);
    if (jsonEqual(conditions, bp.status?.conditions ?? [])) return bp;
    const old = bp.status?.conditions?.find((c) => c.type === cond.type);
    const updated = await this.write(() =>
      this.store.updateProgramStatus({ ...bp, status: { ...bp.status, conditions } })
    );
    // Failures get an Event per BpfProgram; loads are summed up in the config's Event (one write, not N).
    if (cond.status !== "True" && (!old || old.status !== cond.status || old.message !== cond.message)) {
      await this.event({
        kind: "BpfProgram",
        name: bp.metadata.name,
        uid: updated.metadata.uid ?? bp.metadata.uid,
        type: "Warning",
        reason: cond.reason,
        message: cond.message,
      });
    }
    return updated;
  }
}
