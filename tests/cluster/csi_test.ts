/**
 * Map volumes (CSI driver `csi.bpfd.io`) on the real one-node cluster, as docs/csi.md describes them:
 *   1. bpfd deployed: the kubelet registers the driver (CSINode);
 *   2. a reader pod (uid 1000, no capabilities, no hostPath, read-only root) whose config is not Loaded
 *      yet waits in ContainerCreating, starts once it is, and reads the XDP counter while pings flow;
 *   3. a writer pod flips the program's drop switch: pings from the peer are dropped, then pass again;
 *   4. a pod consumes the program's ring buffer records while traffic flows;
 *   5. a pod whose ServiceAccount lacks the grant, a pod in a second namespace and a pod naming an unknown
 *      map never start, and their Events say why;
 *   6. the node pod restarted while a pod is deleted: the volume is removed all the same, a running pod's
 *      volume stays; after all pods are gone: no map volume mount in the node's mountinfo, no pin;
 *   7. figures: pod created → volume published (median of 5), map reads through the volume against the
 *      node's pin (BENCHMARKS.md).
 * Everything is removed in `finally`; bpfd is undeployed.
 */
import assert from "node:assert/strict";
import { importImage } from "../../deploy/cluster.ts";
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
  KUBELET_DIR,
  NODE_NAME,
  pingNode,
  pods,
  root,
  undeployAll,
  useCluster,
  waitUntil,
  withLogs,
} from "./_cluster.ts";

const CONFIG = "xdp-gate";
const NS_A = "bpfd-csi-a", NS_B = "bpfd-csi-b";
const NODE_SELECTOR = "app.kubernetes.io/name=bpfd-node";
const FS_GROUP = 3000;

/** The gate program's config; `nodeselector` selects every node unless given. */
const gateConfig = (nodeselector: Json = {}) => ({
  apiVersion: "bpfd.io/v1alpha1",
  kind: "BpfProgramConfig",
  metadata: { name: CONFIG },
  spec: {
    name: "xdp_gate",
    type: "XDP",
    nodeselector,
    attachpoint: { interface: "eth0" },
    bytecode: { path: "/app/bytecode/build/xdp_gate.bpf.o" },
  },
});

/** An application pod: uid 1000, no capabilities, read-only root, its maps through a CSI volume only. */
function appPod(
  name: string,
  opts: { ns?: string; sa: string; maps: string; write?: boolean; args: string[]; shell?: boolean },
): Json {
  const cmd = ["deno", "run", "-A", "--cached-only", "examples/map_volume.ts", ...opts.args];
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: opts.ns ?? NS_A, labels: { app: "csi-test" } },
    spec: {
      serviceAccountName: opts.sa,
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 1,
      securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: FS_GROUP },
      containers: [{
        name: "app",
        image: IMAGE_REF,
        imagePullPolicy: "Never",
        command: opts.shell ? ["sh", "-c", `${cmd.join(" ")} && exec sleep 3600`] : cmd,
        env: [{ name: "HOME", value: "/tmp" }],
        securityContext: {
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ["ALL"] },
        },
        volumeMounts: [{ name: "maps", mountPath: "/maps" }, { name: "tmp", mountPath: "/tmp" }],
      }],
      volumes: [
        {
          name: "maps",
          csi: {
            driver: "csi.bpfd.io",
            readOnly: !opts.write,
            volumeAttributes: { "bpfd.io/config": CONFIG, "bpfd.io/maps": opts.maps },
          },
        },
        { name: "tmp", emptyDir: {} },
      ],
    },
  };
}

const apply = (o: Json) => k(["apply", "-f", "-"], JSON.stringify(o));

async function pod(ns: string, name: string): Promise<Json> {
  return await get(["-n", ns, "pod", name]);
}

/** The messages of the pod's Events. */
async function events(ns: string, name: string): Promise<string[]> {
  const list = await k([
    "-n",
    ns,
    "get",
    "events",
    "--field-selector",
    `involvedObject.name=${name}`,
    "-o",
    "json",
  ]);
  return list.items.map((e: Json) => `${e.reason}: ${e.message}`);
}

async function waitEvent(ns: string, name: string, pattern: RegExp, seconds = 90): Promise<string> {
  let found = "";
  await waitUntil(`an Event of ${ns}/${name} matching ${pattern}`, seconds, async () => {
    found = (await events(ns, name)).find((m) => pattern.test(m)) ?? "";
    return !!found;
  });
  return found;
}

async function running(ns: string, name: string, seconds = 120): Promise<Json> {
  let p: Json;
  await waitUntil(`pod ${ns}/${name} Running`, seconds, async () => {
    p = await pod(ns, name);
    if (["Succeeded", "Failed"].includes(p?.status?.phase)) {
      throw new Error(`pod ${name} ended: ${p.status.phase}`);
    }
    return p?.status?.phase === "Running";
  });
  return p;
}

async function logLines(ns: string, name: string): Promise<Json[]> {
  const r = await kubectl(["-n", ns, "logs", name]);
  return r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

/** The pod's JSON log lines once there is one (its whole log in the error when it ends without). */
async function readings(ns: string, name: string): Promise<Json[]> {
  let lines: Json[] = [];
  await waitUntil(`a line in ${ns}/${name}'s log`, 60, async () => {
    lines = await logLines(ns, name);
    if (!lines.length && ["Succeeded", "Failed"].includes((await pod(ns, name))?.status?.phase)) {
      throw new Error(`${name} ended: ${(await kubectl(["-n", ns, "logs", name])).stdout}`);
    }
    return lines.length > 0;
  });
  return lines;
}

async function nodePod(): Promise<Json> {
  let p: Json;
  await waitUntil("the bpfd-node pod Ready", 120, async () => {
    const ps = (await pods("bpfd", NODE_SELECTOR)).filter((x) => !x.metadata.deletionTimestamp);
    p = ps[0];
    return ps.length === 1 && isReady(p);
  });
  return p;
}

/** The node's map volume mounts (bpffs mounts under the kubelet's pods dir) and staging leftovers. */
async function volumeMounts(): Promise<string[]> {
  const r = await inNode(["cat", "/proc/self/mountinfo"]);
  return r.stdout.split("\n").filter((l) =>
    / - bpf /.test(l) && (l.includes(`${KUBELET_DIR}/pods/`) || l.includes("csi-staging"))
  );
}

async function deletePods(ns: string, names: string[]): Promise<void> {
  if (names.length) await k(["-n", ns, "delete", "pod", ...names, "--wait=true", "--timeout=90s"]);
}

Deno.test("cluster csi: map volumes for pods without privileges, authorized per ServiceAccount", async (t) => {
  /** A step; the steps after a failed one are not run (each builds on the ones before). */
  const step = async (name: string, fn: () => Promise<void>) => {
    if (!(await t.step(name, fn))) throw new Error(`step failed: ${name}`);
  };
  const cluster = await useCluster();
  try {
    await importImage(IMAGE_ARCHIVE, IMAGE_REF);
    await undeployAll();
    await withLogs(async () => {
      await step("1. deploy: the kubelet registers csi.bpfd.io", async () => {
        const r = await deployCli([
          "deploy",
          "--image",
          IMAGE_REF,
          "--pull-policy",
          "Never",
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^csidriver\/csi.bpfd.io (created|configured|unchanged)$/m);
        await nodePod();
        // The controller serves the configs' admission webhooks.
        await waitUntil("controller pods Ready", 120, async () => {
          const ps = await pods("bpfd", "app.kubernetes.io/name=bpfd-controller");
          return ps.length > 0 && ps.every(isReady);
        });
        await waitUntil("CSINode lists csi.bpfd.io", 60, async () => {
          const csinode = await get(["csinode", NODE_NAME]);
          return (csinode?.spec?.drivers ?? []).some((d: Json) => d.name === "csi.bpfd.io");
        });
        for (const ns of [NS_A, NS_B]) await k(["create", "namespace", ns]);
        for (const [ns, sa] of [[NS_A, "app"], [NS_A, "writer"], [NS_A, "nogrant"], [NS_B, "app"]]) {
          await k(["-n", ns, "create", "serviceaccount", sa]);
        }
        await k([
          "-n",
          NS_A,
          "create",
          "rolebinding",
          "app-maps",
          "--clusterrole=bpfd-maps-user",
          `--serviceaccount=${NS_A}:app`,
        ]);
        await k([
          "-n",
          NS_A,
          "create",
          "rolebinding",
          "writer-maps",
          "--clusterrole=bpfd-maps-writer",
          `--serviceaccount=${NS_A}:writer`,
        ]);
      });

      await step("2. a reader waits for the program, then reads the counter while pings flow", async () => {
        // The config selects no node yet: the program is not Loaded here.
        await apply(gateConfig({ matchLabels: { "bpfd.io/csi-test": "later" } }));
        await apply(
          appPod("reader", {
            sa: "app",
            maps: "gate_packets",
            args: ["read", "--map", "gate_packets", "--count", "0"],
          }),
        );
        const waiting = await waitEvent(NS_A, "reader", /FailedMount.*xdp-gate is not Loaded on node/);
        assert.match(waiting, /code = Unavailable/);
        assert.equal((await pod(NS_A, "reader")).status.phase, "Pending");
        await apply(gateConfig());
        await waitUntil(`BpfProgram of ${CONFIG} Loaded`, 90, async () => {
          const list = await k(["get", "bpfprograms", "-l", `owningConfig=${CONFIG}`, "-o", "json"]);
          return condition(list.items[0], "Loaded")?.status === "True";
        });
        const p = await running(NS_A, "reader", 180);
        assert.equal(p.spec.securityContext.runAsUser, 1000);
        assert.ok(!p.spec.volumes.some((v: Json) => v.hostPath));
        const first = BigInt((await readings(NS_A, "reader")).at(-1).value);
        assert.equal((await pingNode(10, 0.1)).received, 10);
        let last = first;
        await waitUntil("the reader sees the pings", 20, async () => {
          last = BigInt((await logLines(NS_A, "reader")).at(-1).value);
          return last >= first + 10n;
        });
        const inside = await kubectl([
          "-n",
          NS_A,
          "exec",
          "reader",
          "--",
          "sh",
          "-c",
          "ls -ln /maps; grep CapEff /proc/self/status",
        ]);
        assert.equal(inside.code, 0, inside.stderr);
        assert.match(inside.stdout, new RegExp(`-r--r-----\\s+\\d+\\s+0\\s+${FS_GROUP}\\s.*gate_packets`));
        assert.doesNotMatch(inside.stdout, /gate_drop|gate_events|debug/);
        assert.match(inside.stdout, /CapEff:\s+0+\n/);
      });

      await step(
        "3. a writer flips the drop switch: the peer's pings are dropped, then pass again",
        async () => {
          await apply(appPod("writer", {
            sa: "writer",
            maps: "gate_drop",
            write: true,
            shell: true,
            args: ["set", "--map", "gate_drop", "--value", "1"],
          }));
          await running(NS_A, "writer");
          await readings(NS_A, "writer");
          assert.equal((await pingNode(5, 0.2)).received, 0, "pings dropped while the switch is on");
          const set0 = await kubectl([
            "-n",
            NS_A,
            "exec",
            "writer",
            "--",
            ..."deno run -A --cached-only examples/map_volume.ts set --map gate_drop --value 0".split(" "),
          ]);
          assert.equal(set0.code, 0, set0.stderr);
          assert.equal((await pingNode(5, 0.2)).received, 5, "pings pass again");
          // The reader's volume is read-only: its pod cannot write the counter.
          const denied = await kubectl([
            "-n",
            NS_A,
            "exec",
            "reader",
            "--",
            ..."deno run -A --cached-only examples/map_volume.ts set --map gate_packets --value 0".split(" "),
          ]);
          assert.notEqual(denied.code, 0);
        },
      );

      await step("4. a pod consumes ring buffer records while traffic flows", async () => {
        await apply(appPod("events", {
          sa: "writer",
          maps: "gate_events",
          write: true,
          args: ["events", "--map", "gate_events", "--count", "5"],
        }));
        const pinger = pingNode(20, 0.2);
        await waitUntil("the events pod done", 120, async () => {
          const phase = (await pod(NS_A, "events"))?.status?.phase;
          if (phase === "Failed") {
            throw new Error(`events pod failed: ${(await kubectl(["-n", NS_A, "logs", "events"])).stdout}`);
          }
          return phase === "Succeeded";
        });
        await pinger;
        const records = await logLines(NS_A, "events");
        assert.ok(records.length >= 5, `${records.length} records`); // every ready record of the last batch
        for (const r of records) {
          assert.equal(r.words.length, 2);
          assert.ok(r.words[0] >= 42, `packet length ${r.words[0]}`);
          assert.ok([1, 2].includes(r.words[1]), `verdict ${r.words[1]}`);
        }
        await deletePods(NS_A, ["events"]);
      });

      await step(
        "5. no grant, another namespace, an unknown map: never started, Events say why",
        async () => {
          await apply(
            appPod("nogrant", {
              sa: "nogrant",
              maps: "gate_packets",
              args: ["read", "--map", "gate_packets"],
            }),
          );
          await apply(
            appPod("other-ns", {
              ns: NS_B,
              sa: "app",
              maps: "gate_packets",
              args: ["read", "--map", "gate_packets"],
            }),
          );
          await apply(appPod("badmap", { sa: "app", maps: "nope", args: ["read", "--map", "nope"] }));
          const noConfig = appPod("noconfig", {
            sa: "app",
            maps: "gate_packets",
            args: ["read", "--map", "gate_packets"],
          });
          noConfig.spec.volumes[0].csi.volumeAttributes["bpfd.io/config"] = "no-such-config";
          await apply(noConfig);
          assert.match(
            await waitEvent(NS_A, "nogrant", /PermissionDenied/),
            new RegExp(`ServiceAccount ${NS_A}/nogrant may not use the maps of BpfProgramConfig ${CONFIG}`),
          );
          assert.match(
            await waitEvent(NS_B, "other-ns", /PermissionDenied/),
            new RegExp(`ServiceAccount ${NS_B}/app may not use the maps of BpfProgramConfig ${CONFIG}`),
          );
          assert.match(
            await waitEvent(NS_A, "badmap", /NotFound/),
            /has no map nope \(it has: .*gate_packets/,
          );
          assert.match(
            await waitEvent(NS_A, "noconfig", /NotFound/),
            /BpfProgramConfig no-such-config not found/,
          );
          const refused = [[NS_A, "nogrant"], [NS_B, "other-ns"], [NS_A, "badmap"], [NS_A, "noconfig"]];
          for (const [ns, name] of refused) {
            const p = await pod(ns, name);
            assert.equal(p.status.phase, "Pending");
            assert.ok(
              !p.status.containerStatuses?.some((c: Json) => c.state?.running),
              `${name} never started`,
            );
          }
          await deletePods(NS_A, ["nogrant", "badmap", "noconfig"]);
          await deletePods(NS_B, ["other-ns"]);
          // reader + writer (events finished: its volume is gone with its containers).
          await waitUntil("two map volumes left", 60, async () => (await volumeMounts()).length === 2);
        },
      );

      await step(
        "6. node pod restarted while a pod goes: nothing left behind; a running pod keeps its maps",
        async () => {
          const old = await nodePod();
          await k(["-n", "bpfd", "delete", "pod", old.metadata.name, "--wait=false"]);
          await deletePods(NS_A, ["writer"]).catch(() => {/* finishes once the driver is back */});
          await waitUntil("a new node pod Ready", 120, async () => {
            const ps = (await pods("bpfd", NODE_SELECTOR)).filter((p) =>
              p.metadata.name !== old.metadata.name
            );
            return ps.length === 1 && isReady(ps[0]);
          });
          await waitUntil("the writer gone", 120, async () => (await pod(NS_A, "writer")) === undefined);
          await waitUntil(
            "one map volume left (the reader's)",
            60,
            async () => (await volumeMounts()).length === 1,
          );
          const before = BigInt((await logLines(NS_A, "reader")).at(-1).value);
          assert.equal((await pingNode(3, 0.2)).received, 3);
          await waitUntil("the reader still reads", 20, async () => {
            return BigInt((await logLines(NS_A, "reader")).at(-1).value) >= before + 3n;
          });
          await k(["-n", NS_A, "delete", "pod", "--all", "--wait=true", "--timeout=90s"]);
          await waitUntil(
            "no map volume mount in the node",
            60,
            async () => (await volumeMounts()).length === 0,
          );
          const records = await inNode(["cat", "/run/bpfd/csi-volumes.json"]);
          assert.deepEqual(JSON.parse(records.stdout), []);
          const staging = await inNode(["ls", "-A", "/run/bpfd/csi-staging"]);
          assert.notEqual(staging.code, 0, `staging left: ${staging.stdout}`);
        },
      );

      await step(
        "7. figures: pod created → volume published; reads through the volume vs the node's pin",
        async () => {
          const published: number[] = [], handler: number[] = [], toRunning: number[] = [];
          const node = (await nodePod()).metadata.name;
          for (let i = 0; i < 5; i++) {
            const name = `bench-${i}`;
            const t0 = Date.now();
            await apply(
              appPod(name, {
                sa: "app",
                maps: "gate_packets",
                args: ["read", "--map", "gate_packets", "--count", "0"],
              }),
            );
            await running(NS_A, name);
            toRunning.push(Date.now() - t0);
            const logs = await kubectl(["-n", "bpfd", "logs", node, "--since=5m"]);
            const line = logs.stdout.split("\n").filter((l) =>
              l.includes("map volume published") && l.includes(`${NS_A}/${name}"`)
            )
              .map((l) => JSON.parse(l)).at(-1);
            assert.ok(line, `the runtime logged ${name}'s volume`);
            published.push(Date.parse(line.time) - t0);
            handler.push(line.ms);
          }
          const target = (await inNode([
            "sh",
            "-c",
            "grep ' - bpf ' /proc/self/mountinfo | grep kubernetes.io~csi | head -1",
          ]))
            .stdout.split(" ")[4];
          const nodePin = (await inNode(["sh", "-c", "find /run/bpfd/fs/maps -name gate_packets | head -1"]))
            .stdout.trim();
          const bench = await inNode([
            Deno.execPath(),
            "run",
            "-A",
            `${root}tests/cluster/_map_read_bench.ts`,
            `${target}/gate_packets`,
            nodePin,
          ]);
          assert.equal(bench.code, 0, bench.stderr);
          const reads = JSON.parse(bench.stdout);
          const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
          console.log(JSON.stringify({
            podCreatedToPublishedMs: median(published),
            publishHandlerMs: median(handler),
            podCreatedToRunningMs: median(toRunning),
            ...reads,
          }));
          assert.ok(reads.volumeNsPerRead > 0 && reads.nodePinNsPerRead > 0);
          await k(["-n", NS_A, "delete", "pod", "--all", "--wait=true", "--timeout=90s"]);
          await waitUntil(
            "no map volume mount in the node",
            60,
            async () => (await volumeMounts()).length === 0,
          );
        },
      );
    });
  } finally {
    for (const ns of [NS_A, NS_B]) {
      await kubectl(["delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=120s"]);
    }
    if (await get(["crd", "bpfprogramconfigs.bpfd.io"]).catch(() => undefined)) {
      await kubectl(["delete", "bpfprogramconfig", CONFIG, "--ignore-not-found", "--timeout=30s"]);
    }
    await undeployAll().catch((e) => console.error(`undeploy: ${e}`));
    await cluster.release();
  }
});
