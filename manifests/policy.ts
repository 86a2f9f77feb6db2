/**
 * BpfPolicy in the deployment: the default policy, the roles that read (nodes, controller) and write
 * (`bpfd-bpfpolicy-admin`) policies, the webhook's Service, and `withPolicy`, which gives the controller its
 * webhook flags and certificate and the node configuration its `policy`.
 *
 * @example
 * ```ts
 * const docs = withPolicy([namespace, controllerDeployment, nodeConfigMap]);
 * ```
 * @module
 */
import { defaultPolicy } from "../policy/default.ts";
import type { Manifest } from "./manifests.ts";
import { CONTROLLER_SERVICE_ACCOUNT, NAMESPACE, NODE_SERVICE_ACCOUNT } from "../model/names.ts";

/** The Secret with the webhook's serving certificate (`tls.crt`, `tls.key`, `ca.crt`). */
export const WEBHOOK_TLS_SECRET = "bpfd-webhook-tls";
/** The Service in front of the controllers' webhook port. */
export const WEBHOOK_SERVICE = "bpfd-controller-webhook";
export const WEBHOOK_PORT = 9443;

const NS = NAMESPACE;
const labels = (component: string) => ({
  "app.kubernetes.io/part-of": "bpfd",
  "app.kubernetes.io/component": component,
});
const READ = ["get", "list", "watch"];

function clusterRole(name: string, rules: unknown[]): Manifest {
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name, labels: labels("policy") },
    rules,
  };
}

function bindToServiceAccounts(name: string, serviceAccounts: string[]): Manifest {
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name, labels: labels("policy") },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
    subjects: serviceAccounts.map((sa) => ({ kind: "ServiceAccount", name: sa, namespace: NS })),
  };
}

/** The policy objects of the deployment (after the CRDs, with the rest of the manifests). */
export function policyDocuments(): Manifest[] {
  return [
    clusterRole("bpfd-policy-reader", [{ apiGroups: ["bpfd.io"], resources: ["bpfpolicies"], verbs: READ }]),
    bindToServiceAccounts("bpfd-policy-reader", [NODE_SERVICE_ACCOUNT, CONTROLLER_SERVICE_ACCOUNT]),
    // The webhook warns about policy subjects nothing refers to: it reads bindings and ServiceAccounts.
    clusterRole("bpfd-policy-webhook", [
      {
        apiGroups: ["rbac.authorization.k8s.io"],
        resources: ["clusterrolebindings", "rolebindings"],
        verbs: ["list"],
      },
      { apiGroups: [""], resources: ["serviceaccounts"], verbs: ["list"] },
    ]),
    bindToServiceAccounts("bpfd-policy-webhook", [CONTROLLER_SERVICE_ACCOUNT]),
    // For whoever writes policy (bound to nobody: a cluster admin binds it).
    clusterRole("bpfd-bpfpolicy-admin", [
      {
        apiGroups: ["bpfd.io"],
        resources: ["bpfpolicies"],
        verbs: [...READ, "create", "update", "patch", "delete"],
      },
    ]),
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: WEBHOOK_SERVICE, namespace: NS, labels: labels("controller") },
      spec: {
        selector: { "app.kubernetes.io/name": "bpfd-controller" },
        ports: [{ name: "webhook", port: 443, targetPort: WEBHOOK_PORT, protocol: "TCP" }],
      },
    },
    { ...defaultPolicy(), metadata: { name: defaultPolicy().metadata.name, labels: labels("policy") } },
  ];
}

/** `docs` with BpfPolicy enforced: the webhook on the controller, the policy in the node configuration. */
export function withPolicy(docs: Manifest[]): Manifest[] {
  const out = docs.map((d) => {
    if (d.kind === "Deployment" && d.metadata.name === "bpfd-controller") return controllerWithWebhook(d);
    if (d.kind === "ConfigMap" && d.data?.["node.json"]) {
      const node = JSON.parse(d.data["node.json"]);
      node.policy = { source: "kubernetes" };
      return { ...d, data: { ...d.data, "node.json": JSON.stringify(node, null, 2) + "\n" } };
    }
    return d;
  });
  return [...out, ...policyDocuments()];
}

function controllerWithWebhook(d: Manifest): Manifest {
  const spec = structuredClone(d.spec);
  const pod = spec.template.spec;
  const c = pod.containers[0];
  c.args = [...(c.args ?? []), "--webhook-listen", `0.0.0.0:${WEBHOOK_PORT}`];
  c.ports = [...(c.ports ?? []), { name: "webhook", containerPort: WEBHOOK_PORT, protocol: "TCP" }];
  c.volumeMounts = [...(c.volumeMounts ?? []), {
    name: "webhook-tls",
    mountPath: "/etc/bpfd/webhook",
    readOnly: true,
  }];
  pod.volumes = [...(pod.volumes ?? []), {
    name: "webhook-tls",
    secret: {
      secretName: WEBHOOK_TLS_SECRET,
      items: [{ key: "tls.crt", path: "tls.crt" }, { key: "tls.key", path: "tls.key" }],
    },
  }];
  return { ...d, spec };
}
