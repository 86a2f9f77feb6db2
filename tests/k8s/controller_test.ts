// The cluster controller end to end, on a real kube-apiserver: three node runtimes as processes, each in
// its own network namespace with its own eth0 and Node object (labels differ), driven by controller
// processes. The seed's example is applied with kubectl (program and bytecode adapted to a local object
// file); programs are really loaded on the selected nodes only and count real traffic; nodeselector and
// label changes move programs; node errors reach the BpfProgram's condition; a killed runtime with its
// programs removed behind bpfd's back is repaired by the resync; nothing is written when nothing changed;
// leader election hands over; deleting configs unloads everywhere and the finalizers go.
import assert from "node:assert/strict";
import { readCounter } from "../_runtime.ts";
import { waitFor } from "../_kube.ts";
import { type Json, TestCluster } from "./_cluster.ts";

const root = new URL("../..", import.meta.url).pathname;
const xdpObject = `${root}bytecode/build/xdp_counter.bpf.o`;
const tcObject = `${root}bytecode/build/tc_counter.bpf.o`;

/** The seed's example, with the program and bytecode of this repository. */
function seedExample(): string {
  return Deno.readTextFileSync(`${root}crds/examples/xdp-pass-all-nodes.yaml`)
    .replace("name: pass", "name: xdp_counter")
    .replace(/imageurl: .*/, `path: ${xdpObject}`);
}

function edgeConfig(selector: Record<string, string>, path = tcObject): string {
  return JSON.stringify({
    apiVersion: "bpfd.io/v1alpha1",
    kind: "BpfProgramConfig",
    metadata: { name: "tc-edge" },
    spec: {
      name: "tc_counter",
      type: "TC",
      nodeselector: { matchLabels: selector },
      priority: 10,
      attachpoint: { interface: "eth0", direction: "ingress" },
      bytecode: { path },
    },
  });
}

const loaded = (bp: Json) => bp.status?.conditions?.find((c: Json) => c.type === "Loaded");

Deno.test("controller: BpfProgramConfig -> BpfPrograms -> programs on the selected nodes, on a real API server", async (t) => {
  const cluster = await TestCluster.start({
    nodes: [
      { name: "node-a", labels: { role: "edge" } },
      { name: "node-b", labels: { role: "edge" } },
      { name: "node-c", labels: { role: "core" } },
    ],
    settings: { "bpfd.resync.seconds": "2", "bpfd.node.timeout.seconds": "5" },
  });
  const rt = (n: string) => cluster.runtimes.get(n)!;
  const kubectl = cluster.kube.kubectl;
  const owned = async (node: string, owner: string) =>
    (await rt(node).programs()).filter((p: Json) => p.program.metadata["bpfd.io/owner"] === owner);
  try {
    await cluster.startController("ctl-1");

    await t.step(
      "the seed's example applied with kubectl loads on every node; traffic is counted",
      async () => {
        const r = await kubectl(["apply", "-f", "-"], { stdin: seedExample() });
        assert.equal(r.code, 0, r.stderr);
        await waitFor(
          "3 nodes loaded",
          async () => (await cluster.config("xdp-pass-all-nodes"))?.status?.nodes?.loaded === 3,
          60000,
        );
        const bps = await cluster.bpfPrograms("xdp-pass-all-nodes");
        assert.deepEqual(
          bps.map((b: Json) => b.metadata.name).sort(),
          [
            "xdp-pass-all-nodes-node-a",
            "xdp-pass-all-nodes-node-b",
            "xdp-pass-all-nodes-node-c",
          ],
        );
        const cfg = await cluster.config("xdp-pass-all-nodes");
        for (const bp of bps) {
          // Shaped like the seed's example BpfProgram.
          assert.deepEqual(bp.metadata.finalizers, ["bpfd.io.agent/finalizer"]);
          assert.equal(bp.metadata.labels.owningConfig, "xdp-pass-all-nodes");
          assert.deepEqual(bp.metadata.ownerReferences, [{
            apiVersion: "bpfd.io/v1alpha1",
            blockOwnerDeletion: true,
            controller: true,
            kind: "BpfProgramConfig",
            name: "xdp-pass-all-nodes",
            uid: cfg.metadata.uid,
          }]);
          const c = loaded(bp);
          assert.deepEqual([c.status, c.reason, c.message], [
            "True",
            "bpfdLoaded",
            "Successfully loaded BpfProgram",
          ]);
          const ids = Object.keys(bp.spec.programs);
          assert.equal(ids.length, 1);
          const p = bp.spec.programs[ids[0]];
          assert.deepEqual(p.attachpoint, { interface: "eth0" });
          // The node really has it, attached.
          const [prog] = await owned(bp.spec.node, bp.metadata.name);
          assert.equal(String(prog.id), ids[0]);
          assert.equal(prog.links.length, 1);
          assert.equal(prog.links[0].attach.iface, "eth0");
          // Traffic on the node's eth0 is counted through the pinned map.
          const net = rt(bp.spec.node).net;
          const before = readCounter(p.maps.xdp_packets);
          assert.equal(await net.pingNode(5), 5);
          assert.ok(readCounter(p.maps.xdp_packets) >= before + 5, `${bp.spec.node}: counter did not move`);
        }
        const c = cfg.status.conditions.find((x: Json) => x.type === "Loaded");
        assert.deepEqual([c.status, c.reason], ["True", "bpfdLoaded"]);
        const get = await kubectl(["get", "bpfprogramconfigs"]);
        assert.match(get.stdout, /xdp-pass-all-nodes\s+XDP\s+xdp_counter\s+3\s+3\s+0\s+bpfdLoaded/);
        const ev = await kubectl([
          "get",
          "events",
          "-n",
          "default",
          "--field-selector",
          "reason=bpfdLoaded",
          "-o",
          "json",
        ]);
        const loadedEvents = JSON.parse(ev.stdout).items.map((e: Json) =>
          `${e.involvedObject.kind}/${e.involvedObject.name}: ${e.message}`
        );
        assert.ok(
          loadedEvents.includes("BpfProgramConfig/xdp-pass-all-nodes: loaded on 3/3 nodes"),
          String(loadedEvents),
        );
      },
    );

    await t.step("nothing is written when nothing changed (resyncs every 2 s)", async () => {
      const snapshot = async () =>
        JSON.stringify([
          (await cluster.config("xdp-pass-all-nodes")).metadata.resourceVersion,
          ...(await cluster.bpfPrograms()).map((b: Json) =>
            `${b.metadata.name}@${b.metadata.resourceVersion}`
          ),
        ]);
      const before = await snapshot();
      await new Promise((r) => setTimeout(r, 5000));
      assert.equal(await snapshot(), before);
    });

    await t.step("a nodeselector selects only matching nodes; changing it moves the program", async () => {
      let r = await kubectl(["apply", "-f", "-"], { stdin: edgeConfig({ role: "edge" }) });
      assert.equal(r.code, 0, r.stderr);
      await waitFor(
        "edge nodes loaded",
        async () => (await cluster.config("tc-edge"))?.status?.nodes?.loaded === 2,
        30000,
      );
      assert.equal((await owned("node-a", "tc-edge-node-a")).length, 1);
      assert.equal((await owned("node-b", "tc-edge-node-b")).length, 1);
      assert.equal((await owned("node-c", "tc-edge-node-c")).length, 0);
      assert.deepEqual((await cluster.bpfPrograms("tc-edge")).map((b: Json) => b.spec.node).sort(), [
        "node-a",
        "node-b",
      ]);
      // tc counts on the selected nodes.
      const bp = (await cluster.bpfPrograms("tc-edge")).find((b: Json) => b.spec.node === "node-a");
      const map = (Object.values(bp.spec.programs)[0] as Json).maps.tc_packets;
      const before = readCounter(map);
      await rt("node-a").net.pingNode(4);
      assert.ok(readCounter(map) >= before + 4);

      r = await kubectl(["apply", "-f", "-"], { stdin: edgeConfig({ role: "core" }) });
      assert.equal(r.code, 0, r.stderr);
      await waitFor("moved to node-c", async () => {
        const bps = await cluster.bpfPrograms("tc-edge");
        return bps.length === 1 && bps[0].spec.node === "node-c" && loaded(bps[0])?.status === "True";
      }, 30000);
      assert.equal((await owned("node-a", "tc-edge-node-a")).length, 0);
      assert.equal((await owned("node-b", "tc-edge-node-b")).length, 0);
      assert.equal((await owned("node-c", "tc-edge-node-c")).length, 1);
      const ev = await kubectl([
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        "reason=nodeNotSelected",
        "-o",
        "name",
      ]);
      assert.ok(ev.stdout.trim().split("\n").length >= 2, `events: ${ev.stdout}`);
    });

    await t.step("changing a node's labels moves the program too", async () => {
      const r = await kubectl(["label", "node", "node-a", "role=core", "--overwrite"]);
      assert.equal(r.code, 0, r.stderr);
      await waitFor(
        "node-a selected",
        async () => (await cluster.config("tc-edge"))?.status?.nodes?.loaded === 2,
        30000,
      );
      assert.equal((await owned("node-a", "tc-edge-node-a")).length, 1);
      await kubectl(["label", "node", "node-a", "role=edge", "--overwrite"]);
      await waitFor(
        "node-a dropped",
        async () => (await owned("node-a", "tc-edge-node-a")).length === 0,
        30000,
      );
    });

    await t.step("a node's error reaches the BpfProgram condition and the config summary", async () => {
      const r = await kubectl(["apply", "-f", "-"], {
        stdin: edgeConfig({ role: "core" }, "/nonexistent/prog.o"),
      });
      assert.equal(r.code, 0, r.stderr);
      await waitFor(
        "failing",
        async () => (await cluster.config("tc-edge"))?.status?.nodes?.failing === 1,
        30000,
      );
      const [bp] = await cluster.bpfPrograms("tc-edge");
      const c = loaded(bp);
      assert.deepEqual([c.status, c.reason], ["False", "bpfdNotLoaded"]);
      assert.match(c.message, /\/nonexistent\/prog\.o not found/);
      // A failed change keeps what ran before (make-before-break), and says so.
      assert.equal(Object.keys(bp.spec.programs).length, 1);
      assert.equal((await owned("node-c", "tc-edge-node-c")).length, 1, "the old program went");
      assert.match(c.message, /the previous version keeps running/);
      const cfg = await cluster.config("tc-edge");
      assert.deepEqual(cfg.status.failingNodes, ["node-c"]);
      const warn = await kubectl([
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        "involvedObject.name=tc-edge-node-c,type=Warning",
        "-o",
        "json",
      ]);
      assert.ok(
        JSON.parse(warn.stdout).items.some((e: Json) =>
          e.reason === "bpfdNotLoaded" && /not found/.test(e.message)
        ),
        warn.stdout,
      );
      assert.match(cfg.status.conditions[0].message, /failing on 1: node-c: .*not found/);
      const get = await kubectl(["get", "bpfprograms"]);
      assert.match(get.stdout, /tc-edge-node-c\s+node-c\s+tc-edge\s+False\s+bpfdNotLoaded/);
      // Fixed: it loads.
      await kubectl(["apply", "-f", "-"], { stdin: edgeConfig({ role: "core" }) });
      await waitFor(
        "fixed",
        async () => (await cluster.config("tc-edge"))?.status?.nodes?.loaded === 1,
        30000,
      );
    });

    await t.step("an invalid spec is refused by the API server", async () => {
      const r = await kubectl(["apply", "-f", "-"], {
        stdin: seedExample().replace("type: XDP", "type: XDPP").replace("xdp-pass-all-nodes", "bad"),
      });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /spec\.type: Unsupported value: "XDPP"/);
    });

    await t.step(
      "a killed runtime whose programs were removed behind its back is repaired by the resync",
      async () => {
        const b = rt("node-b");
        const [bp] = (await cluster.bpfPrograms("xdp-pass-all-nodes")).filter((x: Json) =>
          x.spec.node === "node-b"
        );
        const oldId = Object.keys(bp.spec.programs)[0];
        await b.kill("SIGKILL");
        // Behind bpfd's back: detached and unpinned, so the kernel frees the program.
        await b.net.exec("ip", "link", "set", "dev", "eth0", "xdp", "off");
        for await (const e of Deno.readDir(`${b.dir}/fs`)) {
          if (e.isDirectory) await Deno.remove(`${b.dir}/fs/${e.name}`, { recursive: true });
        }
        await waitFor("node-b reported failing", async () => {
          const x = (await cluster.bpfPrograms("xdp-pass-all-nodes")).find((y: Json) =>
            y.spec.node === "node-b"
          );
          return loaded(x)?.status === "False" && /unreachable/.test(loaded(x).message);
        }, 30000);
        await b.start();
        const fresh = await waitFor("node-b reloaded", async () => {
          const x = (await cluster.bpfPrograms("xdp-pass-all-nodes")).find((y: Json) =>
            y.spec.node === "node-b"
          );
          const id = Object.keys(x?.spec?.programs ?? {})[0];
          return loaded(x)?.status === "True" && id && id !== oldId ? x : undefined;
        }, 30000);
        const p = Object.values(fresh.spec.programs)[0] as Json;
        const before = readCounter(p.maps.xdp_packets);
        await b.net.pingNode(3);
        assert.ok(readCounter(p.maps.xdp_packets) >= before + 3);
      },
    );

    await t.step("the bpfd-config ConfigMap is read again when it changes (node port)", async () => {
      const setPort = (port: string) =>
        kubectl([
          "patch",
          "configmap",
          "-n",
          "bpfd",
          "bpfd-config",
          "--type=merge",
          "-p",
          JSON.stringify({ data: { "bpfd.node.port": port } }),
        ]);
      assert.equal((await setPort("50099")).code, 0);
      await waitFor("nodes unreachable on the new port", async () => {
        const cfg = await cluster.config("xdp-pass-all-nodes");
        return cfg?.status?.nodes?.failing === 3 &&
          /:50099 unreachable/.test(cfg.status.conditions[0].message);
      }, 30000);
      assert.equal((await setPort("50052")).code, 0);
      await waitFor(
        "loaded again",
        async () => (await cluster.config("xdp-pass-all-nodes"))?.status?.nodes?.loaded === 3,
        30000,
      );
      // Nothing was unloaded meanwhile: the nodes still count.
      for (const n of ["node-a", "node-b", "node-c"]) {
        assert.equal((await owned(n, `xdp-pass-all-nodes-${n}`)).length, 1, n);
      }
    });

    await t.step("a BpfProgram tampered with or deleted by hand is restored", async () => {
      const name = "xdp-pass-all-nodes-node-a";
      let r = await kubectl(["patch", "bp", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}']);
      assert.equal(r.code, 0, r.stderr);
      await waitFor("finalizer back", async () => {
        const [bp] = (await cluster.bpfPrograms("xdp-pass-all-nodes")).filter((b: Json) =>
          b.metadata.name === name
        );
        return bp?.metadata.finalizers?.includes("bpfd.io.agent/finalizer");
      }, 20000);
      const [before] = await owned("node-a", name);
      r = await kubectl(["delete", "bp", name, "--timeout=30s"]);
      assert.equal(r.code, 0, r.stderr);
      const again = await waitFor("re-created and loaded", async () => {
        const [bp] = (await cluster.bpfPrograms("xdp-pass-all-nodes")).filter((b: Json) =>
          b.metadata.name === name
        );
        return bp && loaded(bp)?.status === "True" && Object.keys(bp.spec.programs).length === 1
          ? bp
          : undefined;
      }, 30000);
      // The deletion went through the finalizer: the node unloaded, then loaded afresh.
      const [now] = await owned("node-a", name);
      assert.notEqual(now.id, before.id);
      assert.deepEqual(Object.keys(again.spec.programs), [String(now.id)]);
    });

    await t.step(
      "a second controller replica waits; it takes over when the leader freezes; the old one steps down",
      async () => {
        const lease = async () =>
          (await kubectl([
            "get",
            "lease",
            "-n",
            "bpfd",
            "bpfd-controller",
            "-o",
            "jsonpath={.spec.holderIdentity}",
          ])).stdout;
        assert.equal(await lease(), "ctl-1");
        const second = await cluster.startController("ctl-2");
        await new Promise((r) => setTimeout(r, 4000));
        assert.equal(await lease(), "ctl-1", "the standby took the lease while the leader was alive");
        // The leader freezes (SIGSTOP): its lease runs out and the standby takes over.
        const first = cluster.controllers[0];
        first.child!.kill("SIGSTOP");
        await waitFor("ctl-2 leads", async () => (await lease()) === "ctl-2", 20000, 250);
        // The new leader acts: a node label change moves the TC program.
        await kubectl(["label", "node", "node-b", "role=core", "--overwrite"]);
        await waitFor(
          "node-b selected by the new leader",
          async () => (await owned("node-b", "tc-edge-node-b")).length === 1,
          30000,
        );
        assert.ok(second.child);
        // The old leader wakes up: it sees it lost the Lease and exits without acting; ctl-2 keeps it.
        const logBefore = (await Deno.readTextFile(first.logFile)).length;
        first.child!.kill("SIGCONT");
        let timer: ReturnType<typeof setTimeout> | undefined;
        const exited = await Promise.race([
          first.child!.status,
          new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), 15000)),
        ]).finally(() => clearTimeout(timer));
        assert.ok(exited && exited.code === 1, "the woken leader did not step down");
        first.child = undefined;
        const log = await Deno.readTextFile(first.logFile);
        assert.match(log, /lost leadership/);
        assert.doesNotMatch(log.slice(logBefore), /"node (converged|unloaded)"/, "the woken leader acted");
        assert.equal(await lease(), "ctl-2");
      },
    );

    await t.step("deleting configs unloads everywhere; the finalizers go", async () => {
      const r = await kubectl(["delete", "bpfprogramconfigs", "--all", "--timeout=60s"]);
      assert.equal(r.code, 0, r.stderr);
      await waitFor("no BpfPrograms", async () => (await cluster.bpfPrograms()).length === 0, 30000);
      for (const n of ["node-a", "node-b", "node-c"]) assert.deepEqual(await rt(n).programs(), [], n);
      assert.equal(await cluster.config("xdp-pass-all-nodes"), undefined);
      assert.equal(await cluster.config("tc-edge"), undefined);
    });
  } catch (err) {
    console.error(await cluster.logs(40));
    throw err;
  } finally {
    await cluster.stop();
  }
});
