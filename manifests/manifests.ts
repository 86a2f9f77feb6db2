/**
 * bpfd's deployment, as objects: the `bpfd` Namespace, the node runtime's DaemonSet, the controller's
 * Deployment, their ServiceAccounts and least-privilege RBAC, the user-facing ClusterRoles
 * `bpfd-bpfprogramconfig-editor` and `bpfd-bpfprogram-viewer` (aggregated into the standard admin/edit/view
 * roles), the `bpfd-config` ConfigMap and the node runtime's configuration. `deno task deploy` applies
 * `manifestDocuments()` (with the image it is given); `deno task manifests` writes them to
 * manifests/bpfd.yaml for `kubectl apply -f`.
 *
 * The node API's authorization follows the kubelet: a caller of a node runtime's TCP API needs verb
 * `get` (functions that only read: list, get) or `create` (every other function) on the subresource
 * `nodes/bpfd` of that node (`NODE_API_ATTRIBUTES`). The controller's role grants both.
 *
 * @module
 */
import { RUNTIME_DENO_ARGS } from "../runtime/launch.ts";
import { withPolicy } from "./policy.ts";

/** The namespace everything namespaced goes into. */
export const NAMESPACE = "bpfd";
/** The image `deno task deploy` uses when it is given none. */
export const DEFAULT_IMAGE = "quay.io/bpfd/bpfd:latest";
/** The Secret holding the node runtimes' TLS serving certificate (`tls.crt`, `tls.key`, `ca.crt`). */
export const NODE_TLS_SECRET = "bpfd-node-tls";
/** The ConfigMap holding the node runtime's configuration (runtime/config.ts, as `node.json`). */
export const NODE_CONFIG = "bpfd-node-config";
export const NODE_PORT = 50052;

/** The authorization attributes of the node API (kubelet-like: a subresource of the Node). */
export const NODE_API_ATTRIBUTES = { group: "", resource: "nodes", subresource: "bpfd" } as const;

export interface ManifestOptions {
  /** The bpfd image (runtime and controller). */
  image?: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  /** Controller replicas (default 2; one leads, through the Lease `bpfd/bpfd-controller`). */
  replicas?: number;
  /** A hash of the node TLS Secret: on the pod templates, so a new certificate rolls the pods. */
  tlsHash?: string;
}

/** The pod template annotation carrying ManifestOptions.tlsHash. */
export const TLS_HASH_ANNOTATION = "bpfd.io/node-tls-hash";

const PART_OF = { "app.kubernetes.io/part-of": "bpfd" };
const labels = (component: string) => ({ ...PART_OF, "app.kubernetes.io/component": component });

/** A Kubernetes object as the manifests write it. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string };
  // deno-lint-ignore no-explicit-any
  [field: string]: any;
}

const rule = (apiGroups: string[], resources: string[], verbs: string[], resourceNames?: string[]) => ({
  apiGroups,
  resources,
  verbs,
  ...(resourceNames ? { resourceNames } : {}),
});

const READ = ["get", "list", "watch"];

/** The node runtime's configuration in the cluster: TLS and Kubernetes authentication on its TCP port. */
export function nodeRuntimeConfig(): Record<string, unknown> {
  return {
    stateDir: "/run/bpfd",
    bpffs: "/run/bpfd/fs",
    socket: "/run/bpfd/bpfd.sock",
    listen: `0.0.0.0:${NODE_PORT}`,
    tls: { certFile: "/etc/bpfd/tls/tls.crt", keyFile: "/etc/bpfd/tls/tls.key" },
    auth: { mode: "kubernetes" },
  };
}

/** Every object of bpfd's deployment except the CRDs, in the order they are applied. */
export function manifestDocuments(opts: ManifestOptions = {}): Manifest[] {
  const image = opts.image ?? DEFAULT_IMAGE;
  const imagePullPolicy = opts.imagePullPolicy ?? "IfNotPresent";
  const ns = NAMESPACE;
  const annotations = opts.tlsHash ? { [TLS_HASH_ANNOTATION]: opts.tlsHash } : undefined;
  const meta = (name: string, component: string, namespaced = true) => ({
    name,
    ...(namespaced ? { namespace: ns } : {}),
    labels: labels(component),
  });
  const bind = (
    kind: "ClusterRoleBinding" | "RoleBinding",
    name: string,
    sa: string,
    namespace?: string,
  ) => ({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind,
    metadata: { name, ...(namespace ? { namespace } : {}), labels: labels(sa.replace(/^bpfd-/, "")) },
    roleRef: {
      apiGroup: "rbac.authorization.k8s.io",
      kind: kind === "ClusterRoleBinding" ? "ClusterRole" : "Role",
      name,
    },
    subjects: [{ kind: "ServiceAccount", name: sa, namespace: ns }],
  });

  return withPolicy([
    { apiVersion: "v1", kind: "Namespace", metadata: { name: ns, labels: PART_OF } },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: meta("bpfd-node", "node") },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: meta("bpfd-controller", "controller") },

    // The node runtime asks the API server who a caller is and whether it may call.
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: meta("bpfd-node", "node", false),
      rules: [
        rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
        rule(["authorization.k8s.io"], ["subjectaccessreviews"], ["create"]),
      ],
    },
    bind("ClusterRoleBinding", "bpfd-node", "bpfd-node"),

    // The controller: configs (and their status and finalizers), BpfPrograms, Nodes, the node API.
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: meta("bpfd-controller", "controller", false),
      rules: [
        rule(["bpfd.io"], ["bpfprogramconfigs"], [...READ, "update", "patch"]),
        rule(["bpfd.io"], ["bpfprogramconfigs/status", "bpfprogramconfigs/finalizers"], [
          "get",
          "update",
          "patch",
        ]),
        rule(["bpfd.io"], ["bpfprograms"], [...READ, "create", "update", "patch", "delete"]),
        rule(["bpfd.io"], ["bpfprograms/status", "bpfprograms/finalizers"], ["get", "update", "patch"]),
        rule([""], ["nodes"], READ),
        rule([NODE_API_ATTRIBUTES.group], [`nodes/${NODE_API_ATTRIBUTES.subresource}`], ["get", "create"]),
      ],
    },
    bind("ClusterRoleBinding", "bpfd-controller", "bpfd-controller"),
    // In its namespace: the bpfd-config ConfigMap (read) and the leader-election Lease.
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: meta("bpfd-controller", "controller"),
      rules: [
        rule([""], ["configmaps"], READ),
        rule(["coordination.k8s.io"], ["leases"], ["create"]),
        rule(["coordination.k8s.io"], ["leases"], ["get", "update"], ["bpfd-controller"]),
      ],
    },
    bind("RoleBinding", "bpfd-controller", "bpfd-controller", ns),
    // Events about cluster-scoped objects go to the `default` namespace (as kubectl describe looks there).
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "bpfd-controller-events", namespace: "default", labels: labels("controller") },
      rules: [rule([""], ["events"], ["create", "patch"])],
    },
    {
      ...bind("RoleBinding", "bpfd-controller-events", "bpfd-controller", "default"),
    },

    // For users and applications (the seed's two roles), aggregated into the standard roles.
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: {
        name: "bpfd-bpfprogramconfig-editor",
        labels: {
          ...labels("rbac"),
          "rbac.authorization.k8s.io/aggregate-to-admin": "true",
          "rbac.authorization.k8s.io/aggregate-to-edit": "true",
        },
      },
      rules: [
        rule(["bpfd.io"], ["bpfprogramconfigs"], [...READ, "create", "update", "patch", "delete"]),
        rule(["bpfd.io"], ["bpfprogramconfigs/status"], ["get"]),
        rule(["bpfd.io"], ["bpfprograms"], READ),
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: {
        name: "bpfd-bpfprogram-viewer",
        labels: {
          ...labels("rbac"),
          "rbac.authorization.k8s.io/aggregate-to-admin": "true",
          "rbac.authorization.k8s.io/aggregate-to-edit": "true",
          "rbac.authorization.k8s.io/aggregate-to-view": "true",
        },
      },
      rules: [rule(["bpfd.io"], ["bpfprograms"], READ)],
    },

    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: meta("bpfd-config", "controller"),
      data: {
        "bpfd.node.port": String(NODE_PORT),
        "bpfd.node.timeout.seconds": "30",
        "bpfd.resync.seconds": "30",
        "bpfd.log.level": "info",
      },
    },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: meta(NODE_CONFIG, "node"),
      data: { "node.json": JSON.stringify(nodeRuntimeConfig(), null, 2) + "\n" },
    },

    {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: meta("bpfd-node", "node"),
      spec: {
        selector: { matchLabels: { "app.kubernetes.io/name": "bpfd-node" } },
        updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
        template: {
          metadata: { labels: { ...labels("node"), "app.kubernetes.io/name": "bpfd-node" }, annotations },
          spec: {
            serviceAccountName: "bpfd-node",
            hostNetwork: true,
            // Programs attach in other pods' network namespaces (/proc/<pid>/ns/net).
            hostPID: true,
            dnsPolicy: "ClusterFirstWithHostNet",
            priorityClassName: "system-node-critical",
            tolerations: [{ operator: "Exists" }],
            containers: [{
              name: "runtime",
              image,
              imagePullPolicy,
              command: ["deno", ...RUNTIME_DENO_ARGS, "--cached-only", "runtime/main.ts"],
              args: ["--config", "/etc/bpfd/config/node.json"],
              env: [{ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }],
              securityContext: { privileged: true, runAsUser: 0 },
              ports: [{ name: "api", containerPort: NODE_PORT, protocol: "TCP" }],
              readinessProbe: {
                // 200 once the runtime can load programs (bpffs mounted, state recovered, libbpf works).
                httpGet: { path: "/readyz", port: NODE_PORT, scheme: "HTTPS" },
                periodSeconds: 10,
                timeoutSeconds: 5,
              },
              livenessProbe: {
                httpGet: { path: "/healthz", port: NODE_PORT, scheme: "HTTPS" },
                periodSeconds: 20,
                timeoutSeconds: 5,
                failureThreshold: 6,
              },
              resources: { requests: { cpu: "20m", memory: "64Mi" } },
              volumeMounts: [
                // State, the socket and the bpffs (mounted by the runtime at /run/bpfd/fs): shared with the
                // host, so the bpffs mount propagates back and application pods can mount their maps.
                { name: "run-bpfd", mountPath: "/run/bpfd", mountPropagation: "Bidirectional" },
                { name: "sys", mountPath: "/sys", mountPropagation: "Bidirectional" },
                { name: "netns", mountPath: "/run/netns", mountPropagation: "HostToContainer" },
                { name: "modules", mountPath: "/lib/modules", readOnly: true },
                { name: "config", mountPath: "/etc/bpfd/config", readOnly: true },
                { name: "tls", mountPath: "/etc/bpfd/tls", readOnly: true },
                { name: "image-cache", mountPath: "/var/cache/bpfd" },
              ],
            }],
            volumes: [
              { name: "run-bpfd", hostPath: { path: "/run/bpfd", type: "DirectoryOrCreate" } },
              { name: "sys", hostPath: { path: "/sys", type: "Directory" } },
              { name: "netns", hostPath: { path: "/run/netns", type: "DirectoryOrCreate" } },
              { name: "modules", hostPath: { path: "/lib/modules", type: "Directory" } },
              { name: "config", configMap: { name: NODE_CONFIG } },
              {
                name: "tls",
                secret: { secretName: NODE_TLS_SECRET, items: tlsItems(["tls.crt", "tls.key"]) },
              },
              { name: "image-cache", hostPath: { path: "/var/cache/bpfd", type: "DirectoryOrCreate" } },
            ],
          },
        },
      },
    },

    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: meta("bpfd-controller", "controller"),
      spec: {
        replicas: opts.replicas ?? 2,
        selector: { matchLabels: { "app.kubernetes.io/name": "bpfd-controller" } },
        template: {
          metadata: {
            labels: { ...labels("controller"), "app.kubernetes.io/name": "bpfd-controller" },
            annotations,
          },
          spec: {
            serviceAccountName: "bpfd-controller",
            securityContext: { runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534 },
            containers: [{
              name: "controller",
              image,
              imagePullPolicy,
              command: ["deno", "run", "-A", "--cached-only", "controller/main.ts"],
              // The node runtimes' CA; the ServiceAccount token (projected, rotated) authenticates calls.
              args: ["--namespace", ns, "--node-ca", "/etc/bpfd/tls/ca.crt"],
              env: [{ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }],
              securityContext: {
                allowPrivilegeEscalation: false,
                capabilities: { drop: ["ALL"] },
              },
              resources: { requests: { cpu: "20m", memory: "96Mi" } },
              volumeMounts: [{ name: "tls", mountPath: "/etc/bpfd/tls", readOnly: true }],
            }],
            volumes: [{ name: "tls", secret: { secretName: NODE_TLS_SECRET, items: tlsItems(["ca.crt"]) } }],
          },
        },
      },
    },
  ]);
}

function tlsItems(keys: string[]) {
  return keys.map((key) => ({ key, path: key }));
}
