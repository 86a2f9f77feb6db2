/**
 * The BpfPolicy bpfd ships (`bpfd-default`): the groups `bpfd-admins` and `system:masters` (the cluster's
 * own admins, who can rewrite any policy anyway) and `uid:0` may do everything; every
 * other authenticated user may load XDP, TC and TCX at priorities 100–1000, no paths. Priorities 0–99 and
 * the tracing types stay with the admins; docs/policy.md shows how to widen it.
 *
 * @example
 * ```ts
 * compilePolicy([defaultPolicy()]).decide({ type: "kprobe" }, { user: "dev", groups: [] }).allowed; // false
 * ```
 * @module
 */
import type { BpfPolicy } from "../model/policy.ts";

/** The group the default policy gives every BPF operation. */
export const ADMIN_GROUP = "bpfd-admins";
/** The name of the default BpfPolicy. */
export const DEFAULT_POLICY_NAME = "bpfd-default";

/** The default BpfPolicy object. */
export function defaultPolicy(): BpfPolicy {
  return {
    apiVersion: "bpfd.io/v1alpha1",
    kind: "BpfPolicy",
    metadata: { name: DEFAULT_POLICY_NAME },
    spec: {
      rules: [
        {
          name: "admins",
          subjects: [
            { kind: "Group", name: ADMIN_GROUP },
            { kind: "Group", name: "system:masters" },
            { kind: "User", name: "uid:0" },
          ],
          bytecodePaths: ["/"],
        },
        {
          name: "network-above-100",
          subjects: [{ kind: "Group", name: "system:authenticated" }],
          programTypes: ["XDP", "TC", "TCX"],
          priority: { min: 100, max: 1000 },
        },
      ],
    },
  };
}
