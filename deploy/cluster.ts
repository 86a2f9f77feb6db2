/**
 * `deno task cluster up [--deploy] | down | status`: a one-node Kubernetes cluster on this machine, made of
 * real parts, for trying bpfd without a cluster of one's own and for the cluster test tier (tests/cluster/).
 *
 * - The node is a network namespace (`bpfd-node`) whose `eth0` is a veth; its peer is `eth0` in a second
 *   namespace (`bpfd-peer`, 10.123.0.1), from where tests send traffic. Nothing is attached to this
 *   machine's own interfaces; both ends are created inside their namespaces.
 * - The node also has its own mount namespace (a slave copy of the host's, pruned, then rshared, with a
 *   fresh tmpfs on /run): pods' Bidirectional mounts (bpffs at /run/bpfd/fs), containerd's and kubelet's
 *   mounts stay there and vanish with it.
 * - etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd (runc, CNI bridge) and kubelet
 *   all run in the node, like a kubeadm single node; the API server listens on the node's address
 *   (10.123.0.2:6443). The host reaches it on 127.0.0.1:{@link API_PORT} through a relay (socat on the host
 *   → a unix socket → socat in the node), which is what the admin kubeconfig points at.
 * - No kube-proxy is built: the one Service pods need, `kubernetes` (in-cluster clients), is a static DNAT
 *   in the node's namespace, and the API server reaches webhooks' Services at their endpoints
 *   (`--enable-aggregator-routing`). No cluster DNS.
 *
 * Binaries: kube-* and kubectl from Debian's kubernetes 1.20 source, built by tests/k8s/setup.sh into
 * /var/cache/bpfd/kube/bin; etcd, containerd, runc, CNI plugins, socat, umoci and skopeo from Debian
 * (tests/cluster/setup.sh installs all of it). State: /var/lib/bpfd-cluster (removed by `down`).
 * `up` is idempotent and prints, last, `export KUBECONFIG=<admin kubeconfig>`; `down` ends only the
 * processes `up` started (by pid) and leaves no process, mount, namespace, veth or cgroup behind.
 * This file is the command and the cluster tier's entry; the parts live in deploy/cluster/.
 *
 * @module
 */
import "../lib/quiet_deprecations.ts"; // first: before @kubernetes/client-node loads Node's punycode
import { parseArgs } from "node:util";
import { down, status } from "./cluster/down.ts";
import { CLUSTER_DIR, NODE_IP, NODE_NAME, NODE_NETNS, PEER_IP, PEER_NETNS } from "./cluster/layout.ts";
import { isUp, up } from "./cluster/up.ts";

export { must, run, type RunResult } from "../lib/command.ts";
export { deployBpfd } from "./cluster/deploy_bpfd.ts";
export { down, status } from "./cluster/down.ts";
export { importImage } from "./cluster/images.ts";
export {
  API_PORT,
  BUSYBOX_IMAGE,
  CLUSTER_DIR,
  IN_NODE,
  IN_PEER,
  KUBECONFIG,
  KUBECTL,
  kubectl,
  KUBELET_DIR,
  NODE_IP,
  NODE_NAME,
  NODE_NETNS,
  PAUSE_IMAGE,
  PEER_IP,
  PEER_NETNS,
} from "./cluster/layout.ts";
export { waitUntil } from "./cluster/processes.ts";
export { isUp, restartKubelet, stopApiserver, up, type UpOptions } from "./cluster/up.ts";

const USAGE = `usage: deno task cluster up [--deploy] | down | status

up        starts (or keeps) a one-node Kubernetes cluster on this machine: the node is network namespace
          ${NODE_NETNS} (eth0 ${NODE_IP}, its peer ${PEER_IP} in ${PEER_NETNS}); state in ${CLUSTER_DIR}.
          The last line is "export KUBECONFIG=..." for its admin.
  --deploy  also builds bpfd's image if missing (deno task image), loads it into the node and deploys bpfd
down      stops it and removes every trace
status    the cluster's processes and the node's readiness (exit 0 when up, 3 when not)
Needs root and tests/cluster/setup.sh (Debian packages; Kubernetes built once from Debian's source).`;

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { deploy: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  });
  const command = positionals[0];
  if (values.help || !["up", "down", "status"].includes(command)) {
    console.log(USAGE);
    Deno.exit(values.help ? 0 : 2);
  }
  try {
    if (command === "up") {
      const kubeconfig = await up({ deploy: values.deploy });
      console.log(`export KUBECONFIG=${kubeconfig}`);
    } else if (command === "down") {
      await down();
    } else {
      const s = await status();
      for (const [name, pid] of Object.entries(s)) {
        console.log(`${name.padEnd(11)} ${pid ? `running (pid ${pid})` : "stopped"}`);
      }
      const ready = await isUp();
      console.log(`node ${NODE_NAME}: ${ready ? "Ready" : "not Ready"}`);
      // Like systemctl's status: 0 when the cluster is up, 3 when it is not.
      if (!ready || Object.values(s).some((pid) => !pid)) Deno.exit(3);
    }
  } catch (e) {
    console.error(`cluster ${command}: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
