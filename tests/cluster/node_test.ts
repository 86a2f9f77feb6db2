/**
 * The node itself (deploy/cluster.ts), before bpfd is on it: Ready with its veth address, a pod on the CNI
 * bridge and a privileged hostNetwork pod Running (the two kinds bpfd's manifests use), `kubectl logs` and
 * `exec` through the kubelet, the `kubernetes` Service reachable from both, kube-controller-manager's
 * work visible (the root CA ConfigMap it publishes). Its pods are deleted in
 * `finally`.
 */
import assert from "node:assert/strict";
import {
  BUSYBOX_IMAGE,
  get,
  type Json,
  k,
  kubectl,
  NODE_IP,
  NODE_NAME,
  useCluster,
  waitUntil,
} from "./_cluster.ts";

const pod = (name: string, hostNetwork: boolean): Json => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: "default", labels: { "bpfd.io/test": "node" } },
  spec: {
    hostNetwork,
    terminationGracePeriodSeconds: 1,
    containers: [{
      name: "c",
      image: BUSYBOX_IMAGE,
      imagePullPolicy: "Never",
      command: ["/bin/sh", "-c", `echo hello from ${name}; exec sleep 3600`],
      securityContext: hostNetwork ? { privileged: true } : {},
    }],
  },
});

Deno.test("cluster: a Ready node runs bridge and hostNetwork pods; logs, exec, the kubernetes Service", async () => {
  const cluster = await useCluster();
  try {
    const node = await k(["get", "node", NODE_NAME, "-o", "json"]);
    assert.deepEqual(
      node.status.addresses.find((a: Json) => a.type === "InternalIP")?.address,
      NODE_IP,
    );
    await k(
      ["apply", "-f", "-"],
      JSON.stringify({ kind: "List", apiVersion: "v1", items: [pod("bridge", false), pod("hostnet", true)] }),
    );
    await waitUntil("both pods Running", 60, async () => {
      const ps = await k(["-n", "default", "get", "pods", "-l", "bpfd.io/test=node", "-o", "json"]);
      return ps.items.length === 2 && ps.items.every((p: Json) => p.status.phase === "Running");
    });
    const bridge = await get(["-n", "default", "pod", "bridge"]);
    const hostnet = await get(["-n", "default", "pod", "hostnet"]);
    assert.match(bridge.status.podIP, /^10\.124\.0\.\d+$/);
    assert.equal(hostnet.status.podIP, NODE_IP);
    await waitUntil(
      "logs",
      20,
      async () => (await kubectl(["logs", "bridge"])).stdout.includes("hello from bridge"),
    );
    for (const name of ["bridge", "hostnet"]) {
      // In-cluster clients reach the API server through the kubernetes Service's ClusterIP.
      const svc = await kubectl([
        "exec",
        name,
        "--",
        "sh",
        "-c",
        "echo | nc -w 2 $KUBERNETES_SERVICE_HOST 443 && echo open",
      ]);
      assert.equal(svc.code, 0, svc.stderr);
      assert.match(svc.stdout, /open/);
    }
    const eth0 = await kubectl(["exec", "hostnet", "--", "ip", "addr", "show", "eth0"]);
    assert.match(eth0.stdout, new RegExp(`inet ${NODE_IP.replaceAll(".", "\\.")}/24`));
    // kube-controller-manager runs: it publishes the root CA and makes ServiceAccount tokens.
    await waitUntil(
      "kube-root-ca.crt",
      30,
      async () => (await get(["-n", "default", "configmap", "kube-root-ca.crt"])) !== undefined,
    );
  } finally {
    await kubectl([
      "-n",
      "default",
      "delete",
      "pods",
      "-l",
      "bpfd.io/test=node",
      "--wait=true",
      "--timeout=30s",
    ]);
    await cluster.release();
  }
});
