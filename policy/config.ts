/**
 * What a BpfProgramConfig asks of the policy: its spec as a PolicyRequest, and its requester as the
 * admission webhook stamped it (`bpfd.io/requested-by`). Shared by the webhook, the controller, the
 * node's `reconcile` and `bpfd policy check`, so that all of them decide a config the same way.
 *
 * @example
 * ```ts
 * const req = configRequest({ type: "XDP", priority: 100, attachpoint: { interface: "eth0" }, bytecode: { imageurl: "quay.io/x/y" } });
 * ```
 * @module
 */
import { REQUESTED_BY, Requester } from "../model/policy.ts";
import { DEFAULT_PRIORITY, ProgramType } from "../model/schemas.ts";
import type { PolicyRequest } from "./evaluate.ts";

/** The parts of a BpfProgramConfig spec the policy looks at (crds/schema.ts has the whole schema). */
export interface ConfigSpecLike {
  type: string;
  priority?: number;
  attachpoint?: {
    interface?: string;
    tracepoint?: string;
    functionname?: string;
    target?: string;
  };
  bytecode: { imageurl?: string; path?: string };
}

/** The types attached to shared hooks, where priority matters. */
const SHARED = new Set(["xdp", "tc", "tcx"]);

/** The policy request of a config spec (every attribute known but the image's signer). */
export function configRequest(spec: ConfigSpecLike): PolicyRequest {
  const type = ProgramType.safeParse(spec.type.toLowerCase());
  const ap = spec.attachpoint ?? {};
  const req: PolicyRequest = {
    ...(type.success ? { type: type.data } : {}),
    bytecode: spec.bytecode.path !== undefined
      ? { path: spec.bytecode.path }
      : { image: spec.bytecode.imageurl ?? "" },
  };
  if (spec.bytecode.path !== undefined) req.signer = null;
  if (type.success && SHARED.has(type.data)) {
    req.priority = spec.priority ?? DEFAULT_PRIORITY;
    if (ap.interface !== undefined) req.iface = ap.interface;
  }
  if (ap.tracepoint !== undefined) req.tracepoint = ap.tracepoint;
  if (ap.functionname !== undefined) req.fnName = ap.functionname;
  if (ap.target !== undefined) req.target = ap.target;
  return req;
}

/** The requester an annotation value names, or undefined when it is absent or malformed. */
export function requesterOf(annotations: Record<string, string> | undefined): Requester | undefined {
  const raw = annotations?.[REQUESTED_BY];
  if (!raw) return undefined;
  try {
    const r = Requester.safeParse(JSON.parse(raw));
    return r.success ? r.data : undefined;
  } catch {
    return undefined; // not JSON: as if absent
  }
}

/** The annotation value for a requester (stable: the webhook compares it byte for byte). */
export function requesterAnnotation(r: Requester): string {
  return JSON.stringify({ user: r.user, groups: [...r.groups] });
}
