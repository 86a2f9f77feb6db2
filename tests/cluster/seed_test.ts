/**
 * The seed's flow end to end in a real one-node cluster (deploy/cluster.ts: kubelet, containerd, the bpfd
 * image built from Debian packages), each step checked as a user would look at it — kubectl, conditions,
 * the kernel through bpftool, real traffic from the peer of the node's eth0:
 *   1. `deno task deploy --image <local image>`: the DaemonSet's pod Ready, the controller's pods Ready,
 *      one of them holds the Lease;
 *   2. the seed's BpfProgramConfig with `imageurl` in a registry beside the node → the node's BpfProgram
 *      Loaded, XDP on the node's eth0, pings counted;
 *   3. an application pod (no capabilities, runAsNonRoot, read-only root filesystem, group bpfd) finds its
 *      node's BpfProgram with the helper library and reads the counter through the mounted bpffs;
 *   4. the node pod deleted: the DaemonSet makes a new one, the program stays attached (same kernel ids, no
 *      ping lost) and the new pod adopts it;
 *   5. the config deleted (foreground cascade: the garbage collector deletes the BpfProgram through its owner
 *      reference first): unloaded, BpfProgram gone, nothing left under /run/bpfd/fs;
 *   6. a Node deleted while it holds a BpfProgram: the controller deletes the node's BpfProgram at once
 *      without the node unloading anything — the program stays loaded and attached on the machine, still
 *      counting (kubelet 1.20 does not register its Node again by itself; pod GC removes the node's pods
 *      after ~40 s). When the Node returns (kubelet restarted), bpfd's pod comes back, the BpfProgram is
 *      made again and the runtime keeps the same kernel program: Loaded, no reload;
 *   7. `deno task undeploy --all`: no bpfd object, pod or program left.
 * Everything the test makes is removed in `finally`, also when a step fails; the cluster is stopped again
 * if this test started it.
 */
import assert from "node:assert/strict";
import { importImage, restartKubelet } from "../../deploy/cluster.ts";
import {
  BPFD_GID,
  condition,
  deployCli,
  get,
  IMAGE_ARCHIVE,
  IMAGE_REF,
  inNode,
  isReady,
  type Json,
  k,
  kubectl,
  NODE_NAME,
  pingNode,
  pods,
  pushXdpCounter,
  REGISTRY_HOST,
  startPeerRegistry,
  useCluster,
  waitUntil,
  xdpCounterConfig,
  xdpOnEth0,
} from "./_cluster.ts";

const CONFIG = "xdp-counter";
const NODE_SELECTOR = "app.kubernetes.io/name=bpfd-node";
const CONTROLLER_SELECTOR = "app.kubernetes.io/name=bpfd-controller";

async function nodeProgram(): Promise<Json | undefined> {
  const list = await k(["get", "bpfprograms", "-l", `owningConfig=${CONFIG}`, "-o", "json"]);
  return list.items[0];
}

/** The one node pod, once it is Ready (and not `not`). */
async function readyNodePod(not?: string): Promise<Json> {
  let pod: Json;
  await waitUntil("the bpfd-node pod Ready", 120, async () => {
    const ps = (await pods("bpfd", NODE_SELECTOR)).filter((p) =>
      p.metadata.name !== not && !p.metadata.deletionTimestamp
    );
    pod = ps[0];
    return ps.length === 1 && isReady(pod);
  });
  return pod;
}

/** The runtime's own list, asked inside the node pod with the bpfd CLI over its unix socket. */
async function runtimeList(pod: string): Promise<Json> {
  const r = await kubectl([
    "-n",
    "bpfd",
    "exec",
    pod,
    "--",
    "deno",
    "run",
    "-A",
    "--cached-only",
    "cli/main.ts",
    "list",
    "-o",
    "json",
  ]);
  if (r.code !== 0) throw new Error(`bpfd list in ${pod}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Files pinned under the node's /run/bpfd/fs (bpfd's own *.debug files aside). */
async function pinsOnNode(): Promise<string[]> {
  const r = await inNode(["find", "/run/bpfd/fs", "-mindepth", "2"]);
  return r.stdout.split("\n").filter(Boolean);
}

const APP = (image: string) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: "map-reader", namespace: "default" },
  spec: {
    serviceAccountName: "map-reader",
    restartPolicy: "Never",
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 65534,
      runAsGroup: 65534,
      supplementalGroups: [BPFD_GID],
    },
    containers: [{
      name: "reader",
      image,
      imagePullPolicy: "Never",
      command: [
        "deno",
        "run",
        "-A",
        "--cached-only",
        "examples/map_reader.ts",
        "--config",
        CONFIG,
        "--map",
        "xdp_packets",
        "--bpffs",
        "/run/bpfd/fs=/bpfd",
      ],
      env: [
        { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
        { name: "HOME", value: "/tmp" },
      ],
      securityContext: {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      },
      volumeMounts: [
        { name: "bpffs", mountPath: "/bpfd", readOnly: true, mountPropagation: "HostToContainer" },
        { name: "tmp", mountPath: "/tmp" },
      ],
    }],
    volumes: [
      { name: "bpffs", hostPath: { path: "/run/bpfd/fs", type: "Directory" } },
      { name: "tmp", emptyDir: {} },
    ],
  },
});

Deno.test("cluster: the seed's flow in pods on a real node", async (t) => {
  const cluster = await useCluster();
  let registry: Awaited<ReturnType<typeof startPeerRegistry>> | undefined;
  try {
    await importImage(IMAGE_ARCHIVE, IMAGE_REF);
    // From a cluster without bpfd (one left by `cluster up --deploy` may run an older image of the same tag).
    if (await get(["namespace", "bpfd"])) {
      await deployCli(["undeploy", "--all", "--timeout", "30"]);
      await waitUntil(
        "namespace bpfd gone",
        120,
        async () => (await get(["namespace", "bpfd"])) === undefined,
      );
    }

    await t.step("1. deploy: node pod Ready, controller pods Ready, one holds the Lease", async () => {
      // The test registry (step 2) speaks plain HTTP: the node runtimes are told at deploy.
      const r = await deployCli([
        "deploy",
        "--image",
        IMAGE_REF,
        "--pull-policy",
        "Never",
        "--insecure-registry",
        REGISTRY_HOST,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const nodeConfig = await k(["-n", "bpfd", "get", "configmap", "bpfd-node-config", "-o", "json"]);
      assert.deepEqual(JSON.parse(nodeConfig.data["node.json"]).images.insecureRegistries, [REGISTRY_HOST]);
      assert.match(r.stdout, /^daemonset\/bpfd-node \(bpfd\) (created|configured|unchanged)$/m);
      assert.match(r.stdout, /^\d+ created, \d+ configured, \d+ unchanged$/m);
      await readyNodePod();
      let leader = "";
      await waitUntil("controller pods Ready and the Lease held", 120, async () => {
        const ps = await pods("bpfd", CONTROLLER_SELECTOR);
        const lease = await get(["-n", "bpfd", "lease", "bpfd-controller"]);
        leader = lease?.spec?.holderIdentity ?? "";
        return ps.length === 2 && ps.every(isReady) &&
          ps.some((p) => leader.startsWith(p.metadata.name));
      });
      const ds = await k(["-n", "bpfd", "get", "daemonset", "bpfd-node", "-o", "json"]);
      assert.equal(ds.status.numberReady, 1);
      assert.equal(ds.status.desiredNumberScheduled, 1);
      assert.ok(leader, "a controller holds the Lease");
    });

    await t.step(
      "2. the seed's config from a registry: BpfProgram Loaded, XDP on eth0, traffic counted",
      async () => {
        registry = await startPeerRegistry();
        const imageurl = await pushXdpCounter(registry, "bytecode/xdp_counter:v1");
        assert.equal(registry.host, REGISTRY_HOST);
        await k(
          ["apply", "-f", "-"],
          JSON.stringify(xdpCounterConfig(CONFIG, { imageurl })),
        );
        let bp: Json;
        await waitUntil(`BpfProgram of ${CONFIG} Loaded`, 90, async () => {
          bp = await nodeProgram();
          return condition(bp, "Loaded")?.status === "True";
        });
        assert.equal(bp.metadata.labels?.owningConfig, CONFIG);
        assert.ok(bp.metadata.finalizers?.includes("bpfd.io.agent/finalizer"), JSON.stringify(bp.metadata));
        assert.equal(bp.metadata.ownerReferences?.[0]?.name, CONFIG);
        assert.match(bp.metadata.name, new RegExp(NODE_NAME));
        assert.ok((await xdpOnEth0()).length > 0, "an XDP program on the node's eth0");
        const ping = await pingNode(5);
        assert.equal(ping.received, 5);
      },
    );

    await t.step("3. an unprivileged application pod reads the counter", async () => {
      await k(["create", "serviceaccount", "map-reader", "-n", "default"]);
      await k([
        "create",
        "clusterrolebinding",
        "map-reader",
        "--clusterrole=bpfd-bpfprogram-viewer",
        "--serviceaccount=default:map-reader",
      ]);
      await k(["apply", "-f", "-"], JSON.stringify(APP(IMAGE_REF)));
      let pod: Json;
      await waitUntil("the application pod to finish", 90, async () => {
        pod = await get(["-n", "default", "pod", "map-reader"]);
        return ["Succeeded", "Failed"].includes(pod?.status?.phase);
      });
      const logs = await k(["-n", "default", "logs", "map-reader"]);
      assert.equal(pod.status.phase, "Succeeded", logs);
      const reading = JSON.parse(logs.trim().split("\n").at(-1)!);
      assert.equal(reading.node, NODE_NAME);
      assert.match(reading.path, /^\/bpfd\/maps\//);
      assert.ok(Number(reading.value) >= 5, `counter ${reading.value} after 5 pings`);
    });

    await t.step("4. the node pod deleted: program kept (same ids, no ping lost) and adopted", async () => {
      const before = await xdpOnEth0();
      const old = await readyNodePod();
      const listed = await runtimeList(old.metadata.name);
      const programIds = listed.programs.map((p: Json) => p.id);
      assert.equal(programIds.length, 1, JSON.stringify(listed));
      assert.equal(typeof programIds[0], "number");
      const pinger = pingNode(100, 0.1); // 10 s of traffic across the restart
      await new Promise((r) => setTimeout(r, 1000));
      await k(["-n", "bpfd", "delete", "pod", old.metadata.name, "--wait=false"]);
      const fresh = await readyNodePod(old.metadata.name);
      const ping = await pinger;
      assert.equal(ping.received, ping.sent, `${ping.sent - ping.received} ping(s) lost`);
      assert.deepEqual(await xdpOnEth0(), before, "the same XDP program on eth0");
      const adopted = await runtimeList(fresh.metadata.name);
      assert.deepEqual(adopted.programs.map((p: Json) => p.id), programIds);
      const bp = await nodeProgram();
      assert.equal(condition(bp, "Loaded")?.status, "True");
    });

    await t.step(
      "5. the config deleted (GC, foreground): unloaded, BpfProgram gone, /run/bpfd/fs empty",
      async () => {
        const attached = await xdpOnEth0();
        const owned = await nodeProgram();
        assert.equal(owned.metadata.ownerReferences[0].blockOwnerDeletion, true);
        // Foreground: kube-controller-manager's garbage collector deletes the BpfProgram through its owner
        // reference before the config goes; the node unloads and lets it go. (Step 6 deletes in background.)
        await k(["delete", "bpfprogramconfig", CONFIG, "--cascade=foreground", "--timeout=90s"]);
        await waitUntil("the BpfProgram gone", 60, async () => (await nodeProgram()) === undefined);
        assert.deepEqual(await xdpOnEth0(), []);
        for (const id of attached) {
          const r = await inNode(["bpftool", "prog", "show", "id", String(id)]);
          assert.notEqual(r.code, 0, `program ${id} still loaded`);
        }
        assert.deepEqual(await pinsOnNode(), []);
      },
    );

    await t.step("6. a Node deleted while it holds a BpfProgram, then registered again", async () => {
      // A config whose bytecode is a file in the node pod's image (no registry needed).
      await k(
        ["apply", "-f", "-"],
        JSON.stringify(xdpCounterConfig(CONFIG)),
      );
      await waitUntil(`BpfProgram of ${CONFIG} Loaded`, 60, async () => {
        return condition(await nodeProgram(), "Loaded")?.status === "True";
      });
      const attached = await xdpOnEth0();
      assert.equal(attached.length, 1);

      await k(["delete", "node", NODE_NAME]);
      // The controller lets the node's BpfProgram go at once; the config selects no node.
      await waitUntil(
        "the BpfProgram gone with its Node",
        60,
        async () => (await nodeProgram()) === undefined,
      );
      await waitUntil("the config counts no node", 30, async () => {
        const c = await get(["bpfprogramconfig", CONFIG]);
        return c?.status?.nodes?.selected === 0;
      });
      // Nothing unloads it: the machine keeps running the program (documented behaviour).
      assert.deepEqual(await xdpOnEth0(), attached);
      assert.equal((await pingNode(3)).received, 3);

      // The kubelet registers the Node again when it restarts: bpfd's pod returns, the BpfProgram is made
      // again and the runtime keeps the same kernel program (no second load, no reattach).
      await restartKubelet();
      await readyNodePod();
      await waitUntil(`BpfProgram of ${CONFIG} Loaded again`, 120, async () => {
        return condition(await nodeProgram(), "Loaded")?.status === "True";
      });
      assert.deepEqual(await xdpOnEth0(), attached);
      await waitUntil("the controller pods back", 120, async () => {
        const ps = await pods("bpfd", CONTROLLER_SELECTOR);
        return ps.length === 2 && ps.every(isReady);
      });

      await k(["delete", "bpfprogramconfig", CONFIG, "--timeout=90s"]);
      await waitUntil("the BpfProgram gone", 60, async () => (await nodeProgram()) === undefined);
      assert.deepEqual(await xdpOnEth0(), []);
      assert.deepEqual(await pinsOnNode(), []);
    });

    await t.step("7. undeploy --all: no bpfd object, pod or program left", async () => {
      const r = await deployCli(["undeploy", "--all"]);
      assert.equal(r.code, 0, r.stderr);
      await waitUntil(
        "namespace bpfd gone",
        120,
        async () => (await get(["namespace", "bpfd"])) === undefined,
      );
      assert.equal(await get(["crd", "bpfprogramconfigs.bpfd.io"]), undefined);
      const left = await k(["get", "clusterroles,clusterrolebindings", "-o", "name"]);
      assert.doesNotMatch(left, /bpfd-/);
      assert.deepEqual(await xdpOnEth0(), []);
    });
  } finally {
    await kubectl(["-n", "default", "delete", "pod", "map-reader", "--ignore-not-found", "--wait=false"]);
    await kubectl(["-n", "default", "delete", "serviceaccount", "map-reader", "--ignore-not-found"]);
    await kubectl(["delete", "clusterrolebinding", "map-reader", "--ignore-not-found"]);
    if (await get(["crd", "bpfprogramconfigs.bpfd.io"]).catch(() => undefined)) {
      await kubectl(["delete", "bpfprogramconfig", CONFIG, "--ignore-not-found", "--timeout=30s"]);
      await deployCli(["undeploy", "--all", "--timeout", "30"]);
    } else {
      await deployCli(["undeploy"]);
    }
    await registry?.stop();
    await cluster.release();
  }
});
