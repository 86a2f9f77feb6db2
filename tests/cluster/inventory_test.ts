/**
 * Pod attribution on the real node (issue 16): a process in a pod (bpfd's image, privileged, `deno eval`
 * loading `xdp_counter` through ffi/ and holding its fd) is shown in the node's `BpfNodeInventory` as the
 * holder of that program, with the pod's namespace/name and container, and by `bpfd list --cluster
 * --namespace`; when the pod is deleted the program leaves the inventory. The cluster's kubelet runs
 * without per-QoS cgroups, so the pod is found from the container id in the holder's cgroup. bpfd is
 * undeployed and the test's namespace deleted in `finally`.
 */
import assert from "node:assert/strict";
import { importImage } from "../../deploy/cluster.ts";
import {
  deployCli,
  get,
  IMAGE_ARCHIVE,
  IMAGE_REF,
  isReady,
  type Json,
  k,
  KUBECONFIG,
  kubectl,
  NODE_NAME,
  pods,
  root,
  run,
  undeployAll,
  useCluster,
  waitUntil,
} from "./_cluster.ts";

const NS = "bpfd-inventory-test";
const HOLDER = `
import { BpfObject } from "file:///app/ffi/object.ts";
import { programInfo } from "file:///app/ffi/libbpf.ts";
const obj = BpfObject.open("/app/bytecode/build/xdp_counter.bpf.o");
obj.load();
console.log("holding program " + programInfo(obj.programFd("xdp_counter")).id);
setInterval(() => {}, 1 << 30);
`;

const holderPod: Json = {
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: "holder", namespace: NS },
  spec: {
    terminationGracePeriodSeconds: 1,
    containers: [{
      name: "loader",
      image: IMAGE_REF,
      imagePullPolicy: "Never",
      command: ["deno", "eval", HOLDER],
      securityContext: { privileged: true },
    }],
  },
};

function cli(args: string[]) {
  return run(Deno.execPath(), ["run", "-A", `${root}cli/main.ts`, ...args, "--kubeconfig", KUBECONFIG]);
}

async function inventoryProgram(id: number): Promise<Json | undefined> {
  const inv = await get(["bpfnodeinventory", NODE_NAME]);
  return inv?.spec?.programs?.find((p: Json) => p.id === id);
}

Deno.test("cluster inventory: a program held by a process in a pod is attributed to that pod", async () => {
  const cluster = await useCluster();
  try {
    await importImage(IMAGE_ARCHIVE, IMAGE_REF);
    await undeployAll();
    const deployed = await deployCli(["deploy", "--image", IMAGE_REF, "--pull-policy", "Never"]);
    assert.equal(deployed.code, 0, deployed.stderr);
    await waitUntil("bpfd's node pod Ready", 180, async () => {
      const ps = await pods("bpfd", "app.kubernetes.io/name=bpfd-node");
      return ps.length === 1 && isReady(ps[0]);
    });

    await kubectl(["create", "namespace", NS]);
    await k(["apply", "-f", "-"], JSON.stringify(holderPod));
    let programId = 0;
    await waitUntil("the pod holds a program", 120, async () => {
      const logs = await kubectl(["-n", NS, "logs", "holder"]);
      programId = Number(logs.stdout.match(/holding program (\d+)/)?.[1] ?? 0);
      return programId > 0;
    });
    const pod = await k(["-n", NS, "get", "pod", "holder", "-o", "json"]);
    const containerId = pod.status.containerStatuses[0].containerID.replace(/^containerd:\/\//, "");

    let shown: Json;
    await waitUntil("the node's inventory names the pod", 120, async () => {
      shown = await inventoryProgram(programId);
      return shown?.holders?.some((h: Json) => h.pod === `${NS}/holder`) ?? false;
    });
    assert.equal(shown.managed, false);
    assert.equal(shown.name, "xdp_counter");
    const holder = shown.holders.find((h: Json) => h.pod === `${NS}/holder`);
    assert.equal(holder.podUid, pod.metadata.uid);
    assert.equal(holder.containerId, containerId);
    assert.equal(holder.container, "loader");
    assert.equal(holder.comm, "deno");

    const listed = await cli(["list", "--cluster", "--namespace", NS]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`${programId} .*xdp_counter.*pod ${NS}/holder container loader`));

    await kubectl(["-n", NS, "delete", "pod", "holder", "--wait=true", "--timeout=60s"]);
    await waitUntil(
      "the program leaves the inventory with its pod",
      60,
      async () => (await inventoryProgram(programId)) === undefined,
    );
  } finally {
    await kubectl(["delete", "namespace", NS, "--ignore-not-found", "--wait=true", "--timeout=60s"]);
    await undeployAll();
    await cluster.release();
  }
});
