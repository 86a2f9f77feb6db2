/**
 * The CSI map volumes' part of the deployment (docs/csi.md): the `CSIDriver` object `csi.bpfd.io` (ephemeral
 * inline volumes, pod info on mount, fsGroup applied to the files), the ClusterRoles an application's
 * ServiceAccount is bound to (`bpfd-maps-user`: read, `bpfd-maps-writer`: read and write), what the node
 * runtime needs to decide (pods, configs, BpfPrograms), the DaemonSet's kubelet mounts and the runtime's
 * `csi` configuration.
 *
 * @example
 * ```ts
 * const docs = withCsi("/var/lib/kubelet")(baseDocuments);
 * ```
 * @module
 */
import { MAPS_ACCESS, READ_VERB, WRITE_VERB } from "../csi/access.ts";
import { CsiConfig } from "../csi/config.ts";
import { NAMESPACE, NODE_SERVICE_ACCOUNT } from "../model/names.ts";

// deno-lint-ignore no-explicit-any
type Doc = any;

const labels = { "app.kubernetes.io/part-of": "bpfd", "app.kubernetes.io/component": "csi" };
const rbac = "rbac.authorization.k8s.io/v1";
const mapsRule = (verbs: string[]) => ({
  apiGroups: [MAPS_ACCESS.group],
  resources: [`${MAPS_ACCESS.resource}/${MAPS_ACCESS.subresource}`],
  verbs,
});

/** The objects the CSI driver adds. */
export function csiDocuments(): Doc[] {
  return [
    {
      apiVersion: "storage.k8s.io/v1",
      kind: "CSIDriver",
      metadata: { name: CsiConfig.parse({}).driverName, labels },
      spec: {
        attachRequired: false,
        podInfoOnMount: true,
        volumeLifecycleModes: ["Ephemeral"],
        fsGroupPolicy: "File",
      },
    },
    {
      apiVersion: rbac,
      kind: "ClusterRole",
      metadata: { name: "bpfd-node-csi", labels },
      rules: [
        { apiGroups: [""], resources: ["pods"], verbs: ["get"] },
        { apiGroups: ["bpfd.io"], resources: ["bpfprogramconfigs", "bpfprograms"], verbs: ["get"] },
      ],
    },
    {
      apiVersion: rbac,
      kind: "ClusterRoleBinding",
      metadata: { name: "bpfd-node-csi", labels },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "bpfd-node-csi" },
      subjects: [{ kind: "ServiceAccount", name: NODE_SERVICE_ACCOUNT, namespace: NAMESPACE }],
    },
    // Bound in an application's namespace (RoleBinding) to its ServiceAccount; a copy with resourceNames
    // limits it to some configs.
    {
      apiVersion: rbac,
      kind: "ClusterRole",
      metadata: { name: "bpfd-maps-user", labels },
      rules: [mapsRule([READ_VERB])],
    },
    {
      apiVersion: rbac,
      kind: "ClusterRole",
      metadata: { name: "bpfd-maps-writer", labels },
      rules: [mapsRule([READ_VERB, WRITE_VERB])],
    },
  ];
}

/**
 * `docs` with the CSI objects, the node runtime serving the plugin and its pod mounting the kubelet's
 * directories under `kubeletDir` (the kubelet's --root-dir; default /var/lib/kubelet).
 */
export function withCsi(kubeletDir: string | undefined): <T>(docs: T[]) => T[] {
  return (docs) => addCsi(kubeletDir, docs);
}

function addCsi<T>(kubeletDir: string | undefined, docs: T[]): T[] {
  const KUBELET_DIR = kubeletDir ?? CsiConfig.parse({}).kubeletDir;
  for (const d of docs as Doc[]) {
    if (d.kind === "ConfigMap" && d.data?.["node.json"]) {
      const config = JSON.parse(d.data["node.json"]);
      const csi = kubeletDir ? { kubeletDir } : {};
      d.data["node.json"] = JSON.stringify({ ...config, csi }, null, 2) + "\n";
    }
    if (d.kind === "DaemonSet" && d.metadata.name === "bpfd-node") {
      const pod = d.spec.template.spec;
      // The plugin's socket, the kubelet's registration directory, and the pods' volume directories
      // (Bidirectional: a map volume mounted by the runtime must reach the kubelet and the pod).
      const dirs = [
        { name: "kubelet-plugins", path: `${KUBELET_DIR}/plugins` },
        { name: "kubelet-registry", path: `${KUBELET_DIR}/plugins_registry` },
        { name: "kubelet-pods", path: `${KUBELET_DIR}/pods`, propagation: "Bidirectional" },
      ];
      pod.containers[0].volumeMounts.push(
        ...dirs.map((m) => ({
          name: m.name,
          mountPath: m.path,
          ...(m.propagation ? { mountPropagation: m.propagation } : {}),
        })),
      );
      pod.volumes.push(
        ...dirs.map((m) => ({ name: m.name, hostPath: { path: m.path, type: "DirectoryOrCreate" } })),
      );
    }
  }
  return [...docs, ...csiDocuments()];
}
