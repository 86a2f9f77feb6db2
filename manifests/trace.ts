/**
 * The RBAC of trace sessions: the ClusterRole `bpfd-tracer` (verb `trace` on `nodes/bpfd`, which the
 * node runtime checks with a SubjectAccessReview, plus reading Nodes and Pods so `bpfd trace --node`,
 * `--nodes` and `--pod` can find where to go), bound to no one by default; and the node runtime's right
 * to record an Event on the Node for every session (Events of cluster-scoped objects live in `default`).
 *
 * @example
 * ```sh
 * kubectl create clusterrolebinding alice-traces --clusterrole bpfd-tracer --user alice
 * ```
 * @module
 */
import { NAMESPACE, NODE_API_ATTRIBUTES, NODE_SERVICE_ACCOUNT, TRACE_VERB } from "../model/names.ts";
import type { Manifest } from "./manifests.ts";

const LABELS = { "app.kubernetes.io/part-of": "bpfd", "app.kubernetes.io/component": "trace" };

/** The ClusterRole `bpfd-tracer` and the node runtime's Event rights. */
export function traceManifests(): Manifest[] {
  const rbac = "rbac.authorization.k8s.io/v1";
  return [
    {
      apiVersion: rbac,
      kind: "ClusterRole",
      metadata: { name: "bpfd-tracer", labels: LABELS },
      rules: [
        {
          apiGroups: [NODE_API_ATTRIBUTES.group],
          resources: [`${NODE_API_ATTRIBUTES.resource}/${NODE_API_ATTRIBUTES.subresource}`],
          verbs: [TRACE_VERB],
        },
        { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list"] },
        { apiGroups: [""], resources: ["pods"], verbs: ["get"] },
      ],
    },
    {
      apiVersion: rbac,
      kind: "Role",
      metadata: { name: "bpfd-node-trace-events", namespace: "default", labels: LABELS },
      rules: [{ apiGroups: [""], resources: ["events"], verbs: ["create"] }],
    },
    {
      apiVersion: rbac,
      kind: "RoleBinding",
      metadata: { name: "bpfd-node-trace-events", namespace: "default", labels: LABELS },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "bpfd-node-trace-events" },
      subjects: [{ kind: "ServiceAccount", name: NODE_SERVICE_ACCOUNT, namespace: NAMESPACE }],
    },
  ];
}
