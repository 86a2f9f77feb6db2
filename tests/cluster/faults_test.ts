/**
 * Faults of issue 13 on the real node, and that bpfd recovers from them by itself:
 * - a deploy the API server refuses midway (a deployer without rights on DaemonSets): it deletes what it
 *   created, and nothing of bpfd is left;
 * - deployed with an image the node does not have: the pods' Events name the image (kubelet's
 *   ErrImageNeverPull); once the image is there, the pods start without anyone touching bpfd;
 * - then a node where bpffs cannot be mounted (a file where /run/bpfd/fs should be): the node pod's
 *   termination message names the cause; once the file is gone, kubelet's next restart makes it Ready;
 * - the API server gone for 30 s while a program is loaded: the program keeps running (same kernel program,
 *   pings counted), and afterwards the controller leads again, unloads a deleted config and loads a new one;
 * - a bytecode image in a registry whose certificate a private CA signed: refused (the Loaded condition names
 *   the registry) until `deploy --registry-ca` puts the CA in the node config, which rolls the node pod.
 * bpfd is undeployed (`--all`) in `finally`.
 */
import assert from "node:assert/strict";
import { importImage, stopApiserver, up } from "../../deploy/cluster.ts";
import { issueCa, keyAndRequest, signServing } from "../../lib/pki.ts";
import {
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
  PEER_IP,
  type PeerRegistry,
  pingNode,
  pods,
  pushXdpCounter,
  root,
  run,
  serviceAccountKubeconfig,
  startPeerRegistry,
  undeployAll,
  useCluster,
  waitUntil,
  withLogs,
  xdpCounterConfig,
  xdpOnEth0,
} from "./_cluster.ts";

const LATE_IMAGE = "localhost/bpfd:arrives-late";
const DEPLOYER = "test-deployer-without-apps"; // not "bpfd" in its name: bpfdObjects() looks for that
const BPFFS = "/run/bpfd/fs";
const ctr = (args: string[]) =>
  inNode(["ctr", "--address", "/run/containerd/containerd.sock", "-n", "k8s.io", ...args]);

const xdpConfig = (name: string) => JSON.stringify(xdpCounterConfig(name));

/** A deployer that may do everything deploy does except write DaemonSets and Deployments (group apps). */
const deployerObjects = () => [
  { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: DEPLOYER, namespace: "default" } },
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: DEPLOYER },
    rules: [{
      apiGroups: [
        "",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
        "admissionregistration.k8s.io",
        "bpfd.io",
      ],
      resources: ["*"],
      verbs: ["*"],
    }],
  },
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: DEPLOYER },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: DEPLOYER },
    subjects: [{ kind: "ServiceAccount", name: DEPLOYER, namespace: "default" }],
  },
];

/** bpfd's objects in the cluster: names of its CRDs, cluster-wide RBAC, webhooks, and its namespace. */
async function bpfdObjects(): Promise<string[]> {
  const r = await kubectl([
    "get",
    "customresourcedefinitions,clusterroles,clusterrolebindings,mutatingwebhookconfigurations," +
    "validatingwebhookconfigurations,namespaces",
    "-o",
    "name",
  ]);
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout.split("\n").filter((n) => /bpfd/.test(n));
}

/** Puts a file where the node runtime mounts bpffs (no bpfd running, no program pinned there). */
async function blockBpffs(): Promise<void> {
  const r = await inNode([
    "sh",
    "-c",
    `set -e
    if [ -n "$(ls -A ${BPFFS}/progs 2>/dev/null)" ]; then echo "programs pinned under ${BPFFS}" >&2; exit 1; fi
    while mountpoint -q ${BPFFS}; do umount ${BPFFS}; done
    [ ! -d ${BPFFS} ] || rmdir ${BPFFS}
    mkdir -p /run/bpfd && echo "not a directory" > ${BPFFS}`,
  ]);
  assert.equal(r.code, 0, r.stderr);
}

const unblockBpffs = () => inNode(["sh", "-c", `[ ! -f ${BPFFS} ] || rm ${BPFFS}`]);

async function loaded(config: string): Promise<boolean> {
  const list = await k(["get", "bpfprograms", "-l", `owningConfig=${config}`, "-o", "json"]);
  return list.items.length === 1 && condition(list.items[0], "Loaded")?.status === "True";
}

Deno.test("cluster faults: a refused deploy, a missing image, no bpffs, no API server, an untrusted registry", async (t) => {
  const cluster = await useCluster();
  const tmp = await Deno.makeTempDir({ prefix: "bpfd-cluster-faults-" });
  let registry: PeerRegistry | undefined;
  try {
    await importImage(IMAGE_ARCHIVE, IMAGE_REF);
    await ctr(["images", "rm", LATE_IMAGE]);
    await undeployAll();

    await t.step("a deploy refused midway deletes what it created: nothing of bpfd is left", async () => {
      assert.deepEqual(await bpfdObjects(), [], "no bpfd before");
      await k(
        ["apply", "-f", "-"],
        JSON.stringify({ apiVersion: "v1", kind: "List", items: deployerObjects() }),
      );
      const kubeconfig = await serviceAccountKubeconfig("default", DEPLOYER);
      try {
        const r = await run(Deno.execPath(), [
          "run",
          "-A",
          `${root}deploy/deploy.ts`,
          "deploy",
          "--image",
          IMAGE_REF,
          "--kubeconfig",
          kubeconfig,
        ]);
        assert.equal(r.code, 1, r.stdout);
        assert.match(r.stderr, /applying DaemonSet bpfd\/bpfd-node: .*forbidden/);
        assert.match(r.stderr, /rolled back: the \d+ objects this run created are deleted/);
        assert.match(
          r.stdout,
          /^clusterrole\/bpfd-controller created$/m,
          "cluster-wide objects were created",
        );
        assert.match(r.stdout, /^clusterrole\/bpfd-controller deleted \(rolled back\)$/m);
      } finally {
        await Deno.remove(kubeconfig);
      }
      await waitUntil(
        "namespace bpfd gone",
        120,
        async () => (await get(["namespace", "bpfd"])) === undefined,
      );
      assert.deepEqual(await bpfdObjects(), [], "nothing of bpfd after the failed deploy");
      assert.equal(
        (await k(["-n", "default", "get", "roles,rolebindings", "-o", "name"])).includes("bpfd"),
        false,
      );
    });

    await t.step(
      "an image the node does not have, then bpffs not mountable: each named, each recovered from",
      async () => {
        await blockBpffs();
        const r = await deployCli(["deploy", "--image", LATE_IMAGE, "--pull-policy", "Never"]);
        assert.equal(r.code, 0, r.stderr);
        let message = "";
        await waitUntil("an Event naming the missing image", 60, async () => {
          const events = await k(["-n", "bpfd", "get", "events", "-o", "json"]);
          const e = events.items.find((e: Json) => e.reason === "ErrImageNeverPull");
          message = e?.message ?? "";
          return message !== "";
        });
        assert.match(message, new RegExp(LATE_IMAGE.replaceAll(".", "\\.")));
        // The image arrives (tagged in the node's containerd): the kubelet retries, nothing else is done.
        const tagged = await ctr(["images", "tag", IMAGE_REF, LATE_IMAGE]);
        assert.equal(tagged.code, 0, tagged.stderr);
        // The node pod starts, cannot mount bpffs, and says so in its termination message.
        let terminated: Json;
        await waitUntil("the node pod terminated, naming bpffs", 120, async () => {
          const [p] = await pods("bpfd", "app.kubernetes.io/name=bpfd-node");
          const s = p?.status?.containerStatuses?.[0];
          terminated = s?.state?.terminated ?? s?.lastState?.terminated;
          return terminated !== undefined;
        });
        assert.equal(terminated.exitCode, 1);
        assert.match(
          terminated.message,
          /cannot mount bpffs at \/run\/bpfd\/fs: \/run\/bpfd\/fs exists and is not a directory/,
        );
        // The file goes; kubelet's back-off restarts the container, which mounts bpffs and is Ready.
        assert.equal((await unblockBpffs()).code, 0);
        await waitUntil("bpfd's pods Ready on the late image", 240, async () => {
          const ps = await pods("bpfd", "app.kubernetes.io/part-of=bpfd");
          return ps.length === 3 && ps.every(isReady);
        });
        const [node] = await pods("bpfd", "app.kubernetes.io/name=bpfd-node");
        assert.ok(node.status.containerStatuses[0].restartCount >= 1);
        assert.equal((await inNode(["mountpoint", "-q", BPFFS])).code, 0, "bpffs mounted");
      },
    );

    await t.step(
      "the API server gone for 30 s: the program keeps running, bpfd recovers",
      () =>
        withLogs(async () => {
          await k(["apply", "-f", "-"], xdpConfig("fault-before"));
          await waitUntil("fault-before Loaded", 60, () => loaded("fault-before"));
          const attached = await xdpOnEth0();
          assert.equal(attached.length, 1);

          await stopApiserver();
          try {
            assert.notEqual((await kubectl(["get", "--raw", "/readyz"])).code, 0, "the API server is down");
            const during = await pingNode(20, 0.5); // 10 s of traffic while it is away
            assert.equal(during.received, during.sent);
            assert.deepEqual(await xdpOnEth0(), attached);
            await new Promise((r) => setTimeout(r, 20_000));
          } finally {
            await up({ log: () => {} });
          }

          assert.deepEqual(await xdpOnEth0(), attached, "the same program, not reloaded");
          await waitUntil("bpfd's pods Ready and the Lease held again", 180, async () => {
            const ps = await pods("bpfd", "app.kubernetes.io/part-of=bpfd");
            const lease = await get(["-n", "bpfd", "lease", "bpfd-controller"]);
            const holder = lease?.spec?.holderIdentity ?? "";
            const renewed = Date.parse(lease?.spec?.renewTime ?? "") > Date.now() - 15_000;
            return ps.length === 3 && ps.every(isReady) && renewed &&
              ps.some((p) => holder.startsWith(p.metadata.name));
          });
          assert.ok(await loaded("fault-before"));
          // The controller works again: the config deleted, the node unloads; a new one is Loaded. (One XDP
          // program at a time: two on one interface need freplace, which this host's kernel refuses.)
          await k(["delete", "bpfprogramconfig", "fault-before", "--timeout=90s"]);
          assert.deepEqual(await xdpOnEth0(), []);
          await k(["apply", "-f", "-"], xdpConfig("fault-after"));
          await waitUntil("fault-after Loaded", 90, () => loaded("fault-after"));
          await k(["delete", "bpfprogramconfig", "fault-after", "--timeout=90s"]);
          assert.deepEqual(await xdpOnEth0(), []);
        }),
    );

    await t.step(
      "a registry signed by a private CA: refused, then deploy --registry-ca rolls the node pod and it pulls",
      () =>
        withLogs(async () => {
          const ca = await issueCa("bpfd-test-registry-ca", 1);
          const { key, csr } = await keyAndRequest("bpfd-test-registry");
          const cert = await signServing(csr, ca, { ips: [PEER_IP], dns: [] }, 1);
          await Deno.writeTextFile(`${tmp}/registry-ca.pem`, ca.cert);
          registry = await startPeerRegistry({ cert, key, caFile: `${tmp}/registry-ca.pem` });
          const imageurl = await pushXdpCounter(registry, "bytecode/xdp_counter:ca");
          // Always: the node's image cache (a hostPath) may hold this reference from an earlier run.
          const config = xdpCounterConfig("fault-ca", { imageurl });
          config.spec.bytecode.imagepullpolicy = "Always";
          await k(["apply", "-f", "-"], JSON.stringify(config));
          let message = "";
          await waitUntil("fault-ca refused: the registry's CA is not trusted", 90, async () => {
            const list = await k(["get", "bpfprograms", "-l", "owningConfig=fault-ca", "-o", "json"]);
            const c = condition(list.items[0], "Loaded");
            message = c?.message ?? "";
            return c?.status === "False";
          });
          // One message for every connection failure, by design (image/transport.ts): it names the registry.
          assert.match(message, /10\.123\.0\.1:5443 .*TLS/);
          const [old] = await pods("bpfd", "app.kubernetes.io/name=bpfd-node");
          const r = await deployCli([
            "deploy",
            "--image",
            LATE_IMAGE,
            "--pull-policy",
            "Never",
            "--registry-ca",
            `${tmp}/registry-ca.pem`,
          ]);
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stdout, /^configmap\/bpfd-node-config \(bpfd\) configured$/m);
          assert.match(r.stdout, /^daemonset\/bpfd-node \(bpfd\) configured$/m);
          await waitUntil("a new node pod Ready", 180, async () => {
            const ps = await pods("bpfd", "app.kubernetes.io/name=bpfd-node");
            return ps.length === 1 && ps[0].metadata.name !== old.metadata.name && isReady(ps[0]);
          });
          await waitUntil("fault-ca Loaded from the registry", 120, () => loaded("fault-ca"));
          await k(["delete", "bpfprogramconfig", "fault-ca", "--timeout=90s"]);
          assert.deepEqual(await xdpOnEth0(), []);
        }),
    );
  } finally {
    await registry?.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    await up({ log: () => {} }).catch(() => {}); // the API server, if a step left it stopped
    await undeployAll().catch(() => {});
    await unblockBpffs();
    await kubectl(
      ["delete", "--ignore-not-found", "-f", "-"],
      JSON.stringify({ apiVersion: "v1", kind: "List", items: deployerObjects() }),
    );
    await ctr(["images", "rm", LATE_IMAGE]);
    await cluster.release();
  }
});
