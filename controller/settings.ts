/**
 * The cluster-wide parameters in the `bpfd-config` ConfigMap (namespace `bpfd` by default). The
 * controller reads it at start and again whenever it changes; a missing ConfigMap or key means the
 * default. Values are strings, as ConfigMap data is.
 *
 * ```yaml
 * apiVersion: v1
 * kind: ConfigMap
 * metadata: { name: bpfd-config, namespace: bpfd }
 * data:
 *   bpfd.node.port: "50052"            # the node runtimes' TCP port (when a Node has no bpfd.io/address)
 *   bpfd.node.timeout.seconds: "30"    # how long one call to a node may take
 *   bpfd.resync.seconds: "30"          # periodic resync: every config and node checked again
 *   bpfd.log.level: info               # debug, info, warn, error
 * ```
 * Image signatures are required per BpfPolicy rule (`signers`, docs/policy.md), and verified by each node's
 * image store; the former `bpfd.signature.policy` key is gone (reported as unknown, ignored).
 * @module
 */
import { z } from "zod";

export const CONFIGMAP_NAME = "bpfd-config";
export const DEFAULT_NAMESPACE = "bpfd";

const seconds = (def: number) => z.coerce.number().positive().max(86400).default(def);

export const Settings = z.object({
  "bpfd.node.port": z.coerce.number().int().min(1).max(65535).default(50052),
  "bpfd.node.timeout.seconds": seconds(30),
  "bpfd.resync.seconds": seconds(30),
  "bpfd.log.level": z.enum(["debug", "info", "warn", "error"]).default("info"),
});
export type Settings = z.output<typeof Settings>;

/** Settings from ConfigMap data; a bad value falls back to its default and is reported in `problems`. */
export function parseSettings(
  data: Record<string, string> | undefined,
): { settings: Settings; problems: string[] } {
  const problems: string[] = [];
  const good: Record<string, string> = {};
  for (const [k, v] of Object.entries(data ?? {})) {
    if (!(k in Settings.shape)) {
      problems.push(`${k}: unknown key (ignored)`);
      continue;
    }
    const field = Settings.shape[k as keyof typeof Settings.shape];
    const r = field.safeParse(v);
    if (r.success) good[k] = v;
    else problems.push(`${k}: ${r.error.issues[0]?.message ?? "invalid"} (default used)`);
  }
  return { settings: Settings.parse(good), problems };
}
