/**
 * Where the cluster lives and how to reach it: its state directory, namespaces, addresses and images, and
 * the commands (kubectl, ctr) that talk to it.
 * @module
 */
import { run, type RunResult } from "../../lib/command.ts";

/** Everything the cluster keeps on disk. */
export const CLUSTER_DIR = Deno.env.get("BPFD_CLUSTER_DIR") ?? "/var/lib/bpfd-cluster";
/** The node's mount namespace file lives here (a private bind mount of its own). */
export const NS_DIR = "/run/bpfd-cluster";
/** Where tests/k8s/setup.sh leaves the Kubernetes binaries it built. */
export const KUBE_BIN = `${Deno.env.get("BPFD_KUBE_CACHE") ?? "/var/cache/bpfd/kube"}/bin`;

/** The port on the host's loopback where the API server answers. */
export const API_PORT = Number(Deno.env.get("BPFD_CLUSTER_PORT") ?? 16443);
/** The node's name (its Node object and hostname). */
export const NODE_NAME = "bpfd-node";
/** The node's network namespace (`/run/netns/bpfd-node`); its eth0 has {@link NODE_IP}. */
export const NODE_NETNS = "bpfd-node";
/** The namespace holding the peer of the node's eth0 ({@link PEER_IP}): where tests send traffic from. */
export const PEER_NETNS = "bpfd-peer";
/** The node's address, on its eth0. */
export const NODE_IP = "10.123.0.2";
/** The peer's address, on the other end of the veth. */
export const PEER_IP = "10.123.0.1";
/** Pods' addresses (the CNI bridge's range). */
export const POD_CIDR = "10.124.0.0/24";
/** Services' ClusterIPs. */
export const SERVICE_CIDR = "10.125.0.0/24";
/** The `kubernetes` Service's ClusterIP (a static DNAT to the API server). */
export const SERVICE_IP = "10.125.0.1";
/** containerd's sandbox image and a busybox image for pods, both built here from busybox-static. */
export const PAUSE_IMAGE = "localhost/bpfd-pause:1";
/** A busybox image for pods (see {@link PAUSE_IMAGE}). */
export const BUSYBOX_IMAGE = "localhost/bpfd-busybox:1";

/** The kubelet's --root-dir (its plugins, plugin registry and pods' volumes). */
export const KUBELET_DIR = `${CLUSTER_DIR}/kubelet`;
/** The cluster's certificates and keys. */
export const pki = `${CLUSTER_DIR}/pki`;
/** The cluster's own (hard-linked) copies of the Kubernetes binaries. */
export const bin = `${CLUSTER_DIR}/bin`;
/** Each process's output, logs/NAME.log. */
export const logs = `${CLUSTER_DIR}/logs`;
/** Each process's pid file, pids/NAME. */
export const pids = `${CLUSTER_DIR}/pids`;

/** The cluster's admin kubeconfig (on the host: 127.0.0.1:API_PORT). */
export const KUBECONFIG = `${CLUSTER_DIR}/admin.kubeconfig`;
/** kubectl (1.20, matching the API server). */
export const KUBECTL = `${bin}/kubectl`;

/** A command prefix that runs a command in the node: its network and mount namespaces. */
export const IN_NODE = ["nsenter", `--net=/run/netns/${NODE_NETNS}`, `--mount=${NS_DIR}/mnt`, "--"];
/** A command prefix that runs a command in the peer's network namespace. */
export const IN_PEER = ["nsenter", `--net=/run/netns/${PEER_NETNS}`, "--"];

/** kubectl against the cluster, as its admin. */
export function kubectl(args: string[], stdin?: string): Promise<RunResult> {
  return run(KUBECTL, ["--kubeconfig", KUBECONFIG, ...args], stdin);
}

/** containerd's ctr in the node, on the node's containerd. */
export const ctr = (args: string[]): Promise<RunResult> =>
  run(IN_NODE[0], [...IN_NODE.slice(1), "ctr", "--address", "/run/containerd/containerd.sock", ...args]);
