/**
 * Faults of issue 13 on the real node, and that bpfd recovers from them by itself:
 * - deployed with an image the node does not have: the pods' Events name the image (kubelet's
 *   ErrImageNeverPull); once the image is there, the pods start without anyone touching bpfd;
 * - the API server gone for 30 s while a program is loaded: the program keeps running (same kernel program,
 *   pings counted), and afterwards the controller leads again, unloads a deleted config and loads a new one.
 * bpfd is undeployed (`--all`) in `finally`.
 */
import assert from "node:assert/strict";
import { importImage, stopApiserver, up } from "../../deploy/cluster.ts";
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
  pingNode,
  pods,
  useCluster,
  waitUntil,
  withLogs,
  xdpCounterConfig,
  xdpOnEth0,
} from "./_cluster.ts";

const LATE_IMAGE = "localhost/bpfd:arrives-late";
const ctr = (args: string[]) =>
  inNode(["ctr", "--address", "/run/containerd/containerd.sock", "-n", "k8s.io", ...args]);

async function undeployAll(): Promise<void> {
  if (await get(["namespace", "bpfd"]).catch(() => undefined)) {
    await deployCli(["undeploy", "--all", "--timeout", "30"]);
    await waitUntil("namespace bpfd gone", 120, async () => (await get(["namespace", "bpfd"])) === undefined);
  }
}

const xdpConfig = (name: string) => JSON.stringify(xdpCounterConfig(name));

async function loaded(config: string): Promise<boolean> {
  const list = await k(["get", "bpfprograms", "-l", `owningConfig=${config}`, "-o", "json"]);
  return list.items.length === 1 && condition(list.items[0], "Loaded")?.status === "True";
}

Deno.test("cluster faults: an image the node lacks, the API server gone for 30 s", async (t) => {
  const cluster = await useCluster();
  try {
    await importImage(IMAGE_ARCHIVE, IMAGE_REF);
    await ctr(["images", "rm", LATE_IMAGE]);
    await undeployAll();

    await t.step(
      "an image the node does not have: Events name it; the pods start once it arrives",
      async () => {
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
        await waitUntil("bpfd's pods Ready on the late image", 180, async () => {
          const ps = await pods("bpfd", "app.kubernetes.io/part-of=bpfd");
          return ps.length === 3 && ps.every(isReady);
        });
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
  } finally {
    await up({ log: () => {} }).catch(() => {}); // the API server, if a step left it stopped
    await undeployAll().catch(() => {});
    await ctr(["images", "rm", LATE_IMAGE]);
    await cluster.release();
  }
});
