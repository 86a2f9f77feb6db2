/**
 * The node inventory's part of the deployment (docs/inventory.md): the node runtimes may write
 * BpfNodeInventory objects, Events in `default` and list pods (to name holders' pods); the controller
 * reads inventories (its page); the viewer role reads them (`bpfd list --cluster`); a role for scraping
 * `/metrics` (verb get on `nodes/bpfd` for node runtimes, as the node API's read functions; get on the URL
 * /metrics for the controller); and the runtime's configuration turns the inventory on.
 *
 * @example
 * ```ts
 * const docs = withInventory(baseDocuments);
 * ```
 * @module
 */
import { INVENTORY } from "../model/inventory.ts";
import {
  CONTROLLER_SERVICE_ACCOUNT,
  NAMESPACE,
  NODE_API_ATTRIBUTES,
  NODE_SERVICE_ACCOUNT,
} from "../model/names.ts";

// deno-lint-ignore no-explicit-any
type Doc = any;

const READ = ["get", "list", "watch"];
const labels = { "app.kubernetes.io/part-of": "bpfd", "app.kubernetes.io/component": "inventory" };
const rbac = "rbac.authorization.k8s.io/v1";

function binding(
  kind: "ClusterRoleBinding" | "RoleBinding",
  name: string,
  sa: string,
  namespace?: string,
): Doc {
  return {
    apiVersion: rbac,
    kind,
    metadata: { name, ...(namespace ? { namespace } : {}), labels },
    roleRef: {
      apiGroup: "rbac.authorization.k8s.io",
      kind: kind === "ClusterRoleBinding" ? "ClusterRole" : "Role",
      name,
    },
    subjects: [{ kind: "ServiceAccount", name: sa, namespace: NAMESPACE }],
  };
}

/** The objects the inventory adds. */
export function inventoryDocuments(): Doc[] {
  return [
    {
      apiVersion: rbac,
      kind: "ClusterRole",
      metadata: { name: "bpfd-node-inventory", labels },
      rules: [
        { apiGroups: [INVENTORY.group], resources: [INVENTORY.plural], verbs: ["get", "create", "update"] },
        { apiGroups: [""], resources: ["pods"], verbs: ["list"] },
      ],
    },
    binding("ClusterRoleBinding", "bpfd-node-inventory", NODE_SERVICE_ACCOUNT),
    {
      apiVersion: rbac,
      kind: "Role",
      metadata: { name: "bpfd-node-events", namespace: "default", labels },
      rules: [{ apiGroups: [""], resources: ["events"], verbs: ["create"] }],
    },
    binding("RoleBinding", "bpfd-node-events", NODE_SERVICE_ACCOUNT, "default"),
    {
      apiVersion: rbac,
      kind: "ClusterRole",
      metadata: { name: "bpfd-inventory-reader", labels },
      rules: [{ apiGroups: [INVENTORY.group], resources: [INVENTORY.plural], verbs: READ }],
    },
    binding("ClusterRoleBinding", "bpfd-inventory-reader", CONTROLLER_SERVICE_ACCOUNT),
    {
      apiVersion: rbac,
      kind: "ClusterRole",
      metadata: { name: "bpfd-metrics-reader", labels },
      rules: [
        {
          apiGroups: [NODE_API_ATTRIBUTES.group],
          resources: [`${NODE_API_ATTRIBUTES.resource}/${NODE_API_ATTRIBUTES.subresource}`],
          verbs: ["get"],
        },
        // The controller's /metrics (controller/web_auth.ts asks for get on this non-resource URL).
        { nonResourceURLs: ["/metrics"], verbs: ["get"] },
      ],
    },
  ];
}

/** `docs` with the inventory's objects, the viewer reading inventories and the runtime writing them. */
export function withInventory<T>(docs: T[]): T[] {
  for (const d of docs as Doc[]) {
    if (d.kind === "ClusterRole" && d.metadata.name === "bpfd-bpfprogram-viewer") {
      d.rules.push({ apiGroups: [INVENTORY.group], resources: [INVENTORY.plural], verbs: READ });
    }
    if (d.kind === "ConfigMap" && d.data?.["node.json"]) {
      const config = JSON.parse(d.data["node.json"]);
      d.data["node.json"] = JSON.stringify({ ...config, inventory: {} }, null, 2) + "\n";
    }
  }
  return [...docs, ...inventoryDocuments()];
}
