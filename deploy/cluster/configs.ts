/**
 * The node's configuration files: containerd's config.toml, the CNI bridge's conflist and the kubelet's
 * KubeletConfiguration.
 * @module
 */
import { CLUSTER_DIR, NODE_IP, PAUSE_IMAGE, pki, POD_CIDR } from "./layout.ts";

/** Writes the node's configuration files (containerd, CNI, kubelet). */
export async function writeConfigs(): Promise<void> {
  await Deno.mkdir(`${CLUSTER_DIR}/cni/net.d`, { recursive: true });
  await Deno.mkdir(`${CLUSTER_DIR}/cni/ipam`, { recursive: true });
  await Deno.mkdir(`${CLUSTER_DIR}/containerd`, { recursive: true });
  const cri = `plugins."io.containerd.grpc.v1.cri"`;
  // restrict_oom_score_adj: without CAP_SYS_RESOURCE every sandbox fails (runc: "can't get final child's
  // PID from pipe: EOF") for the pause container's oom_score_adj -998.
  await Deno.writeTextFile(
    `${CLUSTER_DIR}/containerd/config.toml`,
    `version = 2
root = "${CLUSTER_DIR}/containerd/root"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "${CLUSTER_DIR}/containerd/opt"
[${cri}]
  sandbox_image = "${PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [${cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${CLUSTER_DIR}/cni/net.d"
  [${cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
`,
  );
  await Deno.writeTextFile(
    `${CLUSTER_DIR}/cni/net.d/10-bpfd.conflist`,
    JSON.stringify(
      {
        cniVersion: "0.4.0",
        name: "bpfd-cluster",
        plugins: [{
          type: "bridge",
          bridge: "cni0",
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: "host-local",
            dataDir: `${CLUSTER_DIR}/cni/ipam`,
            ranges: [[{ subnet: POD_CIDR }]],
            routes: [{ dst: "0.0.0.0/0" }],
          },
        }],
      },
      null,
      2,
    ) + "\n",
  );
  await Deno.writeTextFile(
    `${CLUSTER_DIR}/kubelet.yaml`,
    `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${pki}/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: ${pki}/kubelet-serving.crt
tlsPrivateKeyFile: ${pki}/kubelet-serving.key
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
`,
  );
}
