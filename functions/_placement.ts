/**
 * The parts of a reconcile spec, so that `reconcile` makes the smallest change: the *bytecode* (object or
 * image digest, program name, global data, map owner: a change reloads), the *placement* (where the
 * attachment is: a change moves the link) and the *order* on a shared hook (priority, proceed-on: a change
 * is a `modify`).
 *
 * @example
 * ```ts
 * if (samePlacement(link.attach, want) && !sameOrder(link.attach, want)) await invoke(modify, ...);
 * ```
 * @module
 */
import type { AttachSpec } from "../model/schemas.ts";

/** JSON with sorted keys and no undefined values: equal specs give equal text. */
export function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/** A short hash of a JSON value (key order ignored). */
export async function shortHash(value: unknown): Promise<string> {
  const data = new TextEncoder().encode(JSON.stringify(canonical(value)));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest.slice(0, 12), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** An attachment's placement: everything but its order on the hook. */
export function placement(spec: AttachSpec): string {
  const { priority: _p, proceedOn: _o, ...rest } = spec as AttachSpec & {
    priority?: number;
    proceedOn?: unknown;
  };
  return JSON.stringify(canonical(rest));
}

/** The order fields of an attachment on a shared hook (absent for the other kinds). */
export function orderOf(spec: AttachSpec): { priority?: number; proceedOn?: string[] } {
  const s = spec as { priority?: number; proceedOn?: string[] };
  return { priority: s.priority, proceedOn: s.proceedOn };
}

/** Whether two attachments are at the same place. */
export function samePlacement(a: AttachSpec, b: AttachSpec): boolean {
  return placement(a) === placement(b);
}

/** The `modify` request that turns `have`'s order into `want`'s, or undefined when they agree. */
export function orderChange(
  have: AttachSpec,
  want: AttachSpec,
): { priority?: number; proceedOn?: string[] } | undefined {
  const h = orderOf(have), w = orderOf(want);
  const change: { priority?: number; proceedOn?: string[] } = {};
  if (w.priority !== undefined && w.priority !== h.priority) change.priority = w.priority;
  if (w.proceedOn !== undefined && JSON.stringify(w.proceedOn) !== JSON.stringify(h.proceedOn)) {
    change.proceedOn = w.proceedOn;
  }
  return Object.keys(change).length ? change : undefined;
}
