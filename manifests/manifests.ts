/**
 * bpfd's deployment, as objects: the `bpfd` Namespace, the node runtime's DaemonSet, the controller's
 * Deployment, their ServiceAccounts and least-privilege RBAC, the user-facing ClusterRoles
 * `bpfd-bpfprogramconfig-editor` and `bpfd-bpfprogram-viewer` (the viewer aggregated into the standard
 * admin/edit/view roles, the editor into admin/edit only when asked), the `bpfd-config` ConfigMap and the
 * node runtime's configuration. `deno task deploy` applies `manifestDocuments()` (with the image it is
 * given); `deno task manifests` writes them to manifests/bpfd.yaml for `kubectl apply -f`.
 *
 * The node API's authorization follows the kubelet: a caller of a node runtime's TCP API needs verb
 * `get` (functions that only read: list, get) or `create` (every other function) on the subresource
 * `nodes/bpfd` of that node (`NODE_API_ATTRIBUTES`). The controller's role grants both.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { RUNTIME_DENO_ARGS } from "../runtime/launch.ts";
import { CONTROLLER_DENO_ARGS } from "../controller/launch.ts";
import { withCsi } from "./csi.ts";
import { withInventory } from "./inventory.ts";
import { withPolicy } from "./policy.ts";
import {
  CONTROLLER_SERVICE_ACCOUNT,
  NAMESPACE,
  NODE_API_ATTRIBUTES,
  NODE_SERVICE_ACCOUNT,
  NODE_SIGNER_NAME,
} from "../model/names.ts";
import { traceManifests } from "./trace.ts";

/** Where a pod's ServiceAccount token, CA and namespace are (client-node's in-cluster configuration). */
const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export { NAMESPACE, NODE_API_ATTRIBUTES };
/** The image `deno task deploy` uses when it is given none. */
export const DEFAULT_IMAGE = "quay.io/bpfd/bpfd:latest";
/** The Secret holding the node runtimes' CA (`ca.crt`, `ca.key`): mounted by the controller only. */
export const NODE_CA_SECRET = "bpfd-node-ca";
/** The ConfigMap holding the node runtime's configuration (runtime/config.ts, as `node.json`). */
export const NODE_CONFIG = "bpfd-node-config";
export const NODE_PORT = 50052;

export interface ManifestOptions {
  /** The bpfd image (runtime and controller). */
  image?: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  /** Controller replicas (default 2; one leads, through the Lease `bpfd/bpfd-controller`). */
  replicas?: number;
  /** A hash of the node CA: on the pod templates, so a new CA rolls the pods. */
  tlsHash?: string;
  /**
   * Aggregate `bpfd-bpfprogramconfig-editor` into the built-in `edit` and `admin` roles (default off: a
   * BpfProgramConfig runs code in every selected node's kernel, which `edit` should not imply).
   */
  aggregateToEdit?: boolean;
  /** Registries (host[:port]) the node runtimes pull bytecode images from over plain HTTP. */
  insecureRegistries?: string[];
  /** PEM certificates the node runtimes trust for registries' TLS besides the system's (a private CA). */
  registryCa?: string;
  /** The kubelet's root directory on the nodes (its --root-dir; default /var/lib/kubelet): map volumes. */
  kubeletDir?: string;
}

/** The pod template annotation carrying ManifestOptions.tlsHash. */
export const TLS_HASH_ANNOTATION = "bpfd.io/node-tls-hash";
/** The node pods' annotation with a hash of their ConfigMap: a new configuration rolls them. */
export const NODE_CONFIG_HASH_ANNOTATION = "bpfd.io/node-config-hash";
/** The key of the node ConfigMap holding ManifestOptions.registryCa (mounted with the config). */
const REGISTRY_CA_KEY = "registry-ca.pem";

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

/** Where the node runtime caches bytecode images: a hostPath at the same path, so pulls survive restarts. */
export const IMAGE_CACHE_DIR = "/var/lib/bpfd/images";
/** The node runtime's memory limit: 256 MiB for itself (3× its measured peak) + 4 trace sessions × 256 MiB. */
export const NODE_MEMORY_LIMIT = "1280Mi";
/** The node runtime's ephemeral-storage limit: logs and the writable layer (state and images are hostPaths). */
export const NODE_EPHEMERAL_LIMIT = "1Gi";

/**
 * The node runtime's configuration in the cluster: TLS and Kubernetes authentication on its TCP port, the
 * image cache where the DaemonSet mounts it, the registries deploy was told about.
 */
export function nodeRuntimeConfig(opts: ManifestOptions = {}): Record<string, unknown> {
  return {
    stateDir: "/run/bpfd",
    bpffs: "/run/bpfd/fs",
    socket: "/run/bpfd/bpfd.sock",
    listen: `0.0.0.0:${NODE_PORT}`,
    // Its own key, made at start, and a certificate for this node signed by the controller (CSR API).
    tls: { certFile: "/etc/bpfd/tls/tls.crt", keyFile: "/etc/bpfd/tls/tls.key", request: true },
    auth: { mode: "kubernetes" },
    images: {
      cacheDir: IMAGE_CACHE_DIR,
      ...(opts.insecureRegistries?.length ? { insecureRegistries: opts.insecureRegistries } : {}),
      ...(opts.registryCa ? { caFiles: [`/etc/bpfd/config/${REGISTRY_CA_KEY}`] } : {}),
    },
  };
}

/** The node ConfigMap's data: node.json, and the registries' CA when there is one. */
function nodeConfigData(opts: ManifestOptions): Record<string, string> {
  return {
    "node.json": JSON.stringify(nodeRuntimeConfig(opts), null, 2) + "\n",
    ...(opts.registryCa ? { [REGISTRY_CA_KEY]: opts.registryCa } : {}),
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

  return withCsi(opts.kubeletDir)(withInventory(withPolicy([
    { apiVersion: "v1", kind: "Namespace", metadata: { name: ns, labels: PART_OF } },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: meta(NODE_SERVICE_ACCOUNT, "node") },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: meta(CONTROLLER_SERVICE_ACCOUNT, "controller") },

    // The node runtime asks the API server who a caller is and whether it may call.
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: meta("bpfd-node", "node", false),
      rules: [
        rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
        rule(["authorization.k8s.io"], ["subjectaccessreviews"], ["create"]),
        // It asks for its own serving certificate (the controller approves and signs).
        rule(["certificates.k8s.io"], ["certificatesigningrequests"], ["create", "get"]),
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
        // The signer of node runtimes' serving certificates (controller/signer.ts).
        rule(["certificates.k8s.io"], ["certificatesigningrequests"], READ),
        rule(["certificates.k8s.io"], [
          "certificatesigningrequests/approval",
          "certificatesigningrequests/status",
        ], ["update"]),
        rule(["certificates.k8s.io"], ["signers"], ["approve", "sign"], [NODE_SIGNER_NAME]),
      ],
    },
    bind("ClusterRoleBinding", "bpfd-controller", "bpfd-controller"),
    ...traceManifests(), // bpfd-tracer, and the node's Events about trace sessions
    // In its namespace: the bpfd-config ConfigMap (read) and the leader-election Lease.
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: meta("bpfd-controller", "controller"),
      rules: [
        rule([""], ["configmaps"], READ),
        rule(["coordination.k8s.io"], ["leases"], ["create"]),
        rule(["coordination.k8s.io"], ["leases"], ["get", "update"], ["bpfd-controller"]),
        // Its own tokens for node runtimes, one per node, bound to that node's audience.
        rule([""], ["serviceaccounts/token"], ["create"], [CONTROLLER_SERVICE_ACCOUNT]),
        // The pod behind a node runtime's certificate request: which node it runs on.
        rule([""], ["pods"], ["get"]),
        // Pull secrets that configs name (bytecode.imagepullsecret), sent to the node with the call.
        rule([""], ["secrets"], ["get"]),
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

    // For users and applications (the seed's two roles). The viewer is aggregated into the standard
    // roles; the editor only with `aggregateToEdit` (a config loads programs on nodes: root there).
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: {
        name: "bpfd-bpfprogramconfig-editor",
        labels: {
          ...labels("rbac"),
          ...(opts.aggregateToEdit
            ? {
              "rbac.authorization.k8s.io/aggregate-to-admin": "true",
              "rbac.authorization.k8s.io/aggregate-to-edit": "true",
            }
            : {}),
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
      data: nodeConfigData(opts),
    },

    {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: meta("bpfd-node", "node"),
      spec: {
        selector: { matchLabels: { "app.kubernetes.io/name": "bpfd-node" } },
        updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
        template: {
          metadata: {
            labels: { ...labels("node"), "app.kubernetes.io/name": "bpfd-node" },
            annotations: { ...annotations, [NODE_CONFIG_HASH_ANNOTATION]: hashOf(nodeConfigData(opts)) },
          },
          spec: {
            serviceAccountName: NODE_SERVICE_ACCOUNT,
            // A token bound to this pod (the controller signs a certificate only for the pod's node).
            automountServiceAccountToken: false,
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
              // A runtime that cannot start (bpffs not mountable) logs the cause last: `kubectl get pod` shows it.
              terminationMessagePolicy: "FallbackToLogsOnError",
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
              // Limits with headroom (docs/trust-model.md, "Low items"): see NODE_MEMORY_LIMIT.
              resources: {
                requests: { cpu: "20m", memory: "64Mi" },
                limits: { memory: NODE_MEMORY_LIMIT, "ephemeral-storage": NODE_EPHEMERAL_LIMIT },
              },
              volumeMounts: [
                // State, the socket and the bpffs (mounted by the runtime at /run/bpfd/fs): shared with the
                // host, so the bpffs mount propagates back and application pods can mount their maps.
                { name: "run-bpfd", mountPath: "/run/bpfd", mountPropagation: "Bidirectional" },
                // The host's mounts under /sys (cgroups, tracefs, debugfs) reach the container; nothing the
                // runtime mounts there (tracefs, when the host has none) goes back to the host.
                { name: "sys", mountPath: "/sys", mountPropagation: "HostToContainer" },
                { name: "netns", mountPath: "/run/netns", mountPropagation: "HostToContainer" },
                { name: "modules", mountPath: "/lib/modules", readOnly: true },
                { name: "config", mountPath: "/etc/bpfd/config", readOnly: true },
                { name: "tls", mountPath: "/etc/bpfd/tls" },
                { name: "token", mountPath: SA_DIR, readOnly: true },
                // The image store's cacheDir (model/image.ts's default, which the node config keeps).
                { name: "image-cache", mountPath: IMAGE_CACHE_DIR },
              ],
            }],
            volumes: [
              { name: "run-bpfd", hostPath: { path: "/run/bpfd", type: "DirectoryOrCreate" } },
              { name: "sys", hostPath: { path: "/sys", type: "Directory" } },
              { name: "netns", hostPath: { path: "/run/netns", type: "DirectoryOrCreate" } },
              // Optional: a node without /lib/modules (modules built in) still starts the pod.
              { name: "modules", hostPath: { path: "/lib/modules", type: "DirectoryOrCreate" } },
              { name: "config", configMap: { name: NODE_CONFIG } },
              // The runtime's key and certificate, made at each start, in memory only.
              { name: "tls", emptyDir: { medium: "Memory", sizeLimit: "1Mi" } },
              {
                name: "token",
                projected: {
                  sources: [
                    { serviceAccountToken: { path: "token", expirationSeconds: 3607 } },
                    { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
                    // `sources` is an atomic list: spelled out as the server defaults it, or every apply
                    // would change it (fieldRef.apiVersion).
                    {
                      downwardAPI: {
                        items: [{
                          path: "namespace",
                          fieldRef: { apiVersion: "v1", fieldPath: "metadata.namespace" },
                        }],
                      },
                    },
                  ],
                },
              },
              { name: "image-cache", hostPath: { path: IMAGE_CACHE_DIR, type: "DirectoryOrCreate" } },
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
            serviceAccountName: CONTROLLER_SERVICE_ACCOUNT,
            securityContext: { runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, fsGroup: 65534 },
            containers: [{
              name: "controller",
              image,
              imagePullPolicy,
              command: ["deno", ...CONTROLLER_DENO_ARGS, "--cached-only", "controller/main.ts"],
              // The node runtimes' CA: to trust them, and to sign their certificates. Calls to a node carry
              // a token for that node only (TokenRequest).
              args: [
                "--namespace",
                ns,
                "--node-ca",
                "/etc/bpfd/ca/ca.crt",
                "--node-ca-key",
                "/etc/bpfd/ca/ca.key",
              ],
              env: [{ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }],
              securityContext: {
                allowPrivilegeEscalation: false,
                capabilities: { drop: ["ALL"] },
              },
              resources: { requests: { cpu: "20m", memory: "96Mi" } },
              volumeMounts: [{ name: "ca", mountPath: "/etc/bpfd/ca", readOnly: true }],
            }],
            volumes: [{
              name: "ca",
              secret: {
                secretName: NODE_CA_SECRET,
                items: tlsItems(["ca.crt", "ca.key"]),
                defaultMode: 0o440,
              },
            }],
          },
        },
      },
    },
  ])));
}

/** A short hash of `data` (sha256, hex, 16 digits). */
function hashOf(data: Record<string, string>): string {
  return createHash("sha256").update(JSON.stringify(data)).digest("hex").slice(0, 16);
}

function tlsItems(keys: string[]) {
  return keys.map((key) => ({ key, path: key }));
}
