/**
 * Bringing the cluster up, idempotently: checks, PKI, network, mounts, configs, then the control plane
 * (etcd, kube-apiserver and its relay to the host, kcm, scheduler) and the node (containerd, kubelet).
 * @module
 */
import { run } from "../../lib/command.ts";
import { buildBusyboxImages, IMAGE_CACHE } from "../image.ts";
import { writeConfigs } from "./configs.ts";
import { deployBpfd } from "./deploy_bpfd.ts";
import { importImage } from "./images.ts";
import {
  API_PORT,
  bin,
  BUSYBOX_IMAGE,
  CLUSTER_DIR,
  ctr,
  KUBE_BIN,
  KUBECONFIG,
  kubectl,
  KUBELET_DIR,
  logs,
  NODE_IP,
  NODE_NAME,
  PAUSE_IMAGE,
  PEER_IP,
  PEER_NETNS,
  pids,
  pki,
  SERVICE_CIDR,
} from "./layout.ts";
import { makeMountNamespace } from "./mounts.ts";
import { makeNetwork } from "./network.ts";
import { makePki } from "./pki.ts";
import { exists, locked, pidOf, start, stop, waitUntil } from "./processes.ts";

export interface UpOptions {
  /** Also build bpfd's image if it is missing, load it into the node and deploy bpfd with it. */
  deploy?: boolean;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/**
 * Whether the API server answers and the node is Ready: its Ready condition True and its kubelet's
 * heartbeat (the Lease in kube-node-lease, renewed every 10 s) recent — a Node stays Ready for a while after
 * its kubelet died. With `since` (a kubelet just started), Ready must have been reported after it.
 */
export async function isUp(since?: number): Promise<boolean> {
  const node = await kubectl(["get", "node", NODE_NAME, "-o", "json"]).catch(() => undefined);
  if (node?.code !== 0) return false;
  const ready = JSON.parse(node.stdout).status?.conditions?.find((c: { type: string }) => c.type === "Ready");
  if (ready?.status !== "True") return false;
  if (since !== undefined) return Date.parse(ready.lastHeartbeatTime) >= since - 1000;
  const lease = await kubectl([
    "-n",
    "kube-node-lease",
    "get",
    "lease",
    NODE_NAME,
    "-o",
    "jsonpath={.spec.renewTime}",
  ]);
  return lease.code === 0 && Date.parse(lease.stdout.trim()) >= Date.now() - 40_000;
}

/** Brings the cluster up (idempotent: what runs is kept) and returns its admin kubeconfig's path. */
export function up(opts: UpOptions = {}): Promise<string> {
  return locked(() => upLocked(opts));
}

async function upLocked(opts: UpOptions): Promise<string> {
  const log = opts.log ?? ((l: string) => console.error(`cluster: ${l}`));
  for (const b of ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"]) {
    if (!(await exists(`${KUBE_BIN}/${b}`))) {
      throw new Error(`no ${KUBE_BIN}/${b}: run tests/cluster/setup.sh (it builds Kubernetes once)`);
    }
  }
  for (const c of ["etcd", "containerd", "runc", "socat", "umoci", "skopeo", "iptables"]) {
    if ((await run("sh", ["-c", `command -v ${c}`])).code !== 0) {
      throw new Error(`no ${c}: run tests/cluster/setup.sh`);
    }
  }
  for (const d of [CLUSTER_DIR, bin, logs, pids]) await Deno.mkdir(d, { recursive: true });
  await Deno.chmod(CLUSTER_DIR, 0o700);
  for (const b of ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"]) {
    // Hard links: a rebuild of the cache does not pull binaries from under a running node.
    if (!(await exists(`${bin}/${b}`))) {
      await Deno.link(`${KUBE_BIN}/${b}`, `${bin}/${b}`).catch(() =>
        Deno.copyFile(`${KUBE_BIN}/${b}`, `${bin}/${b}`)
      );
      await Deno.chmod(`${bin}/${b}`, 0o755);
    }
  }
  const fresh = !(await isUp());
  if (fresh) log(`starting a one-node cluster (state in ${CLUSTER_DIR})`);
  await makePki();
  await makeNetwork();
  await makeMountNamespace();
  await writeConfigs();
  await buildBusyboxImages(IMAGE_CACHE, PAUSE_IMAGE, BUSYBOX_IMAGE);

  await Deno.mkdir(`${CLUSTER_DIR}/etcd`, { recursive: true });
  await start("etcd", [
    "etcd",
    `--name=${NODE_NAME}`,
    `--data-dir=${CLUSTER_DIR}/etcd`,
    "--listen-client-urls=http://127.0.0.1:2379",
    "--advertise-client-urls=http://127.0.0.1:2379",
    "--listen-peer-urls=http://127.0.0.1:2380",
    "--initial-advertise-peer-urls=http://127.0.0.1:2380",
    `--initial-cluster=${NODE_NAME}=http://127.0.0.1:2380`,
    "--logger=zap",
    "--log-level=warn",
    "--unsafe-no-fsync",
  ]);
  await start("apiserver", [
    `${bin}/kube-apiserver`,
    "--etcd-servers=http://127.0.0.1:2379",
    "--bind-address=0.0.0.0",
    "--secure-port=6443",
    `--advertise-address=${NODE_IP}`,
    "--insecure-port=0",
    `--tls-cert-file=${pki}/apiserver.crt`,
    `--tls-private-key-file=${pki}/apiserver.key`,
    `--client-ca-file=${pki}/ca.crt`,
    `--kubelet-client-certificate=${pki}/apiserver-kubelet-client.crt`,
    `--kubelet-client-key=${pki}/apiserver-kubelet-client.key`,
    `--kubelet-certificate-authority=${pki}/ca.crt`,
    "--kubelet-preferred-address-types=InternalIP",
    `--service-account-key-file=${pki}/sa.pub`,
    `--service-account-signing-key-file=${pki}/sa.key`,
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    "--api-audiences=https://kubernetes.default.svc.cluster.local",
    "--authorization-mode=Node,RBAC",
    "--enable-admission-plugins=NodeRestriction",
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    "--allow-privileged=true",
    // No kube-proxy: the API server calls webhooks (bpfd's policy webhook) and aggregated APIs at their
    // Services' endpoints, not at the ClusterIP.
    "--enable-aggregator-routing=true",
    "--profiling=false",
    "--logtostderr=true",
    "--v=1",
  ]);
  // The host's door: 127.0.0.1:API_PORT → unix socket → the node's NODE_IP:6443.
  const sock = `${CLUSTER_DIR}/apiserver.sock`;
  if (!(await pidOf("relay-node"))) {
    await Deno.remove(sock).catch(() => {});
    await start("relay-node", ["socat", `UNIX-LISTEN:${sock},fork,mode=600`, `TCP:${NODE_IP}:6443`]);
  }
  await start(
    "relay-host",
    ["socat", `TCP-LISTEN:${API_PORT},bind=127.0.0.1,reuseaddr,fork`, `UNIX-CONNECT:${sock}`],
    true,
  );
  await waitUntil("the API server", 90, async () => (await kubectl(["get", "--raw", "/readyz"])).code === 0);
  const componentKubeconfig = (c: string) => [
    `--kubeconfig=${CLUSTER_DIR}/${c}.kubeconfig`,
    `--authentication-kubeconfig=${CLUSTER_DIR}/${c}.kubeconfig`,
    `--authorization-kubeconfig=${CLUSTER_DIR}/${c}.kubeconfig`,
    "--bind-address=127.0.0.1",
    "--port=0",
    "--leader-elect=false",
    "--logtostderr=true",
    "--v=1",
  ];
  await start("kcm", [
    `${bin}/kube-controller-manager`,
    ...componentKubeconfig("kcm"),
    "--use-service-account-credentials=true",
    `--service-account-private-key-file=${pki}/sa.key`,
    `--root-ca-file=${pki}/ca.crt`,
    `--cluster-signing-cert-file=${pki}/ca.crt`,
    `--cluster-signing-key-file=${pki}/ca.key`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    "--controllers=*,bootstrapsigner,tokencleaner",
  ]);
  await start("scheduler", [`${bin}/kube-scheduler`, ...componentKubeconfig("scheduler")]);
  await start("containerd", ["containerd", "--config", `${CLUSTER_DIR}/containerd/config.toml`]);
  await waitUntil("containerd", 30, async () => (await ctr(["version"])).code === 0);
  await importImage(`${IMAGE_CACHE}/pause.tar`, PAUSE_IMAGE);
  await importImage(`${IMAGE_CACHE}/busybox.tar`, BUSYBOX_IMAGE);
  const kubeletSince = Date.now();
  const kubeletStarted = await start("kubelet", [
    `${bin}/kubelet`,
    `--config=${CLUSTER_DIR}/kubelet.yaml`,
    `--kubeconfig=${CLUSTER_DIR}/kubelet.kubeconfig`,
    "--container-runtime=remote",
    "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
    `--hostname-override=${NODE_NAME}`,
    `--node-ip=${NODE_IP}`,
    `--root-dir=${KUBELET_DIR}`,
    `--cert-dir=${CLUSTER_DIR}/kubelet-pki`,
    "--logtostderr=true",
    "--v=1",
  ]);
  // A kubelet started now must have reported itself (a Ready left over from before does not count).
  await waitUntil(`node ${NODE_NAME} Ready`, 120, () => isUp(kubeletStarted ? kubeletSince : undefined));
  if (fresh) log(`node ${NODE_NAME} Ready (${NODE_IP}; traffic from namespace ${PEER_NETNS}, ${PEER_IP})`);
  if (opts.deploy) await deployBpfd(log);
  return KUBECONFIG;
}

/**
 * Stops the kubelet and starts it again, waiting until the node is Ready: a kubelet registers its Node
 * only when it starts, so this brings back a Node object that was deleted.
 */
export function restartKubelet(): Promise<void> {
  return locked(async () => {
    await stop("kubelet");
    await upLocked({ log: () => {} });
  });
}

/** Stops the API server (SIGTERM), for fault tests; `up` starts it again. */
export function stopApiserver(): Promise<void> {
  return locked(() => stop("apiserver"));
}
