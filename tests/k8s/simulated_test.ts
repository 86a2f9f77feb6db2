/**
 * The controller against simulated nodes (tests/sim/nodes.ts: the real reconcile contract in memory) on a
 * real API server: a config edited many times a second converges to its last edit; a node that answers
 * too slowly and one that fails half its calls get conditions naming the cause while every other node
 * and config is served; a digest roll-out never has more nodes between versions than maxunavailable.
 *
 * @module
 */
import assert from "node:assert/strict";
import { waitFor } from "../_kube.ts";
import { SimulatedNodes } from "../sim/nodes.ts";
import { type Json, TestCluster, xdpCounterConfig } from "./_cluster.ts";

const N = 20;

const loaded = (bp: Json) => bp?.status?.conditions?.find((c: Json) => c.type === "Loaded");

Deno.test("controller on simulated nodes: edit storms, slow and failing nodes, paced roll-outs", async (t) => {
  await using sim = await SimulatedNodes.start({ latencyMs: 1, jitterMs: 4 });
  const cluster = await TestCluster.start({
    nodes: [],
    settings: { "bpfd.resync.seconds": "2", "bpfd.node.timeout.seconds": "1" },
  });
  try {
    for (let i = 1; i <= N; i++) {
      await cluster.core.createNode({
        body: {
          metadata: {
            name: `sim-${i}`,
            labels: { group: i <= 2 ? "bad" : "good" },
            annotations: { "bpfd.io/address": sim.address(`sim-${i}`) },
          },
        },
      });
    }
    await cluster.startController("ctl", ["--log-level", "warn"]);
    const kubectl = async (args: string[], stdin?: string) => {
      const r = await cluster.kube.kubectl(args, stdin !== undefined ? { stdin } : undefined);
      assert.equal(r.code, 0, r.stderr);
    };
    const status = async (name: string) => (await cluster.config(name))?.status;

    await t.step("a config edited 20 times a second converges to its last edit on every node", async () => {
      for (let p = 1; p <= 20; p++) {
        await kubectl(["apply", "-f", "-"], xdpCounterConfig("storm", { priority: p }));
        await new Promise((r) => setTimeout(r, 50));
      }
      const gen = (await cluster.config("storm")).metadata.generation;
      await waitFor("storm converged", async () => {
        const s = await status("storm");
        return s?.observedGeneration === gen && s.nodes?.loaded === N;
      }, 60000);
      const at20 = () =>
        sim.nodes.size === N &&
        [...sim.nodes.entries()].every(([n, m]) => m.get(`storm-${n}`)?.spec.priority === 20);
      await waitFor("every node at priority 20", () => Promise.resolve(at20()), 30000);
      assert.equal(sim.stats.reloads, 0, "a priority edit reloaded");
    });

    await t.step(
      "a slow node and a failing node are named; the others and other configs are served",
      async () => {
        sim.opts.failing = new Set(["sim-1"]);
        sim.opts.failRate = 1;
        const slow = sim.handle.bind(sim);
        sim.handle = async (req: Request) => {
          if (new URL(req.url).pathname.startsWith("/n/sim-2/")) {
            await new Promise((r) => setTimeout(r, 1500));
          }
          return await slow(req);
        };
        try {
          await kubectl(["apply", "-f", "-"], xdpCounterConfig("flaky"));
          await kubectl(
            ["apply", "-f", "-"],
            xdpCounterConfig("only-good", { nodeselector: { matchLabels: { group: "good" } } }),
          );
          await waitFor(
            "only-good loaded",
            async () => (await status("only-good"))?.nodes?.loaded === N - 2,
            30000,
          );
          const condOn = (node: string) =>
            waitFor(`${node} failing`, async () => {
              const c = loaded((await cluster.bpfPrograms("flaky")).find((b: Json) => b.spec.node === node));
              return c?.status === "False" ? c : undefined;
            }, 30000);
          assert.match((await condOn("sim-2")).message, /sim-2 .*unreachable: no answer within 1000 ms/);
          assert.match((await condOn("sim-1")).message, /simulated node sim-1: simulated failure/);
          const s = await waitFor("summary names both", async () => {
            const x = await status("flaky");
            return x?.failingNodes?.includes("sim-1") && x.failingNodes.includes("sim-2") ? x : undefined;
          }, 10000);
          assert.match(s.conditions[0].message, /failing on 2: .*sim-\d: /);
          // Half its calls failing: the retries get through.
          sim.opts.failRate = 0.5;
        } finally {
          sim.handle = slow;
        }
        await waitFor(
          "flaky loaded everywhere",
          async () => (await status("flaky"))?.nodes?.loaded === N,
          90000,
        );
        sim.opts.failRate = 0;
      },
    );

    await t.step("a digest roll-out keeps at most maxunavailable nodes between versions", async () => {
      const image = "registry.sim.invalid/bytecode/xdp:latest";
      sim.digests.set(image, `sha256:${"1".repeat(64)}`);
      await kubectl(
        ["apply", "-f", "-"],
        xdpCounterConfig("roll", {
          bytecode: { imageurl: image, imagepullpolicy: "Always" },
          rollout: { maxunavailable: "10%" },
        }),
      );
      await waitFor("roll loaded", async () => (await status("roll"))?.nodes?.loaded === N, 30000);
      sim.opts.reloadMs = 300;
      sim.stats.peakBetweenVersions = 0;
      const v2 = `sha256:${"2".repeat(64)}`;
      sim.digests.set(image, v2);
      await waitFor(
        "roll status on v2",
        async () => (await status("roll"))?.digests?.[v2]?.length === N,
        60000,
      );
      assert.ok(sim.stats.peakBetweenVersions <= 2, `peak ${sim.stats.peakBetweenVersions} > 10% of ${N}`);
      assert.ok(sim.stats.peakBetweenVersions >= 1);
      assert.ok(sim.stats.waiting > 0, "no node was held back");
    });
    await kubectl(["delete", "bpfprogramconfigs", "--all", "--timeout=60s"]);
  } catch (err) {
    console.error(await cluster.logs(30));
    throw err;
  } finally {
    await cluster.stop();
  }
});

Deno.test("controller on simulated nodes: a deleted config leaves nothing loaded, even for a load the controller never recorded", async (t) => {
  await using sim = await SimulatedNodes.start({ latencyMs: 1 });
  const cluster = await TestCluster.start({ nodes: [], settings: { "bpfd.resync.seconds": "60" } });
  try {
    for (const name of ["sim-1", "sim-2", "sim-3"]) {
      await cluster.core.createNode({
        body: { metadata: { name, annotations: { "bpfd.io/address": sim.address(name) } } },
      });
    }
    const kubectl = async (args: string[], stdin?: string) => {
      const r = await cluster.kube.kubectl(args, stdin !== undefined ? { stdin } : undefined);
      assert.equal(r.code, 0, r.stderr);
    };
    const on = (config: string) => [...sim.nodes].filter(([n, m]) => m.has(`${config}-${n}`)).map(([n]) => n);
    const gone = (name: string) =>
      waitFor(`${name} gone`, async () => !(await cluster.config(name)), 30000, 100);

    await t.step("loaded on sim-1, the controller stopped before it created the BpfProgram", async () => {
      // What a controller that stopped between the node's answer and the create leaves: a config with its
      // finalizer, a program on the node for `lost-sim-1`, no BpfProgram. Then the config is deleted.
      const cfg = JSON.parse(xdpCounterConfig("lost"));
      cfg.metadata.finalizers = ["bpfd.io.controller/finalizer"];
      await kubectl(["apply", "-f", "-"], JSON.stringify(cfg));
      const res = await fetch(`${sim.address("sim-1")}/v1/functions/reconcile`, {
        method: "POST",
        body: JSON.stringify({ name: "lost-sim-1", config: "lost", spec: cfg.spec }),
      });
      assert.equal(res.status, 200, await res.text());
      assert.deepEqual(on("lost"), ["sim-1"]);
      await kubectl(["delete", "bpfprogramconfig", "lost", "--wait=false"]);
      await cluster.startController("ctl", ["--log-level", "warn"]);
      await gone("lost");
      assert.deepEqual(on("lost"), [], "the program stayed loaded after its config went");
      assert.deepEqual(await cluster.bpfPrograms("lost"), []);
    });

    await t.step("a config deleted while its first loads are under way", async () => {
      sim.opts.latencyMs = 1500;
      await kubectl(["apply", "-f", "-"], xdpCounterConfig("brief"));
      const calls = sim.stats.calls;
      await waitFor("first loads under way", () => Promise.resolve(sim.stats.calls >= calls + 3), 10000, 20);
      await kubectl(["delete", "bpfprogramconfig", "brief", "--wait=false"]);
      await gone("brief");
      assert.deepEqual(on("brief"), [], "a program stayed loaded after its config went");
      assert.deepEqual(await cluster.bpfPrograms("brief"), []);
    });
  } catch (err) {
    console.error(await cluster.logs(30));
    throw err;
  } finally {
    await cluster.stop();
  }
});
