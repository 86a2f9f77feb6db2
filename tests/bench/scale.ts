/**
 * Controller scale benchmark on a simulation: one process simulates the node runtimes of 100, 500 and
 * 1,000 nodes (tests/sim/nodes.ts: the real reconcile contract in memory, no kernel), with real Node
 * objects on a real kube-apiserver and the real controller process. Measures apply → all Loaded, the API
 * writes of the apply, of a priority change and of an idle resync, the controller's CPU time and memory;
 * then a digest roll-out across 100 simulated nodes (a re-pushed tag found by the resync) with
 * `maxunavailable: 10%`, and the most nodes that were between versions at once.
 *
 * ```sh
 * deno task bench scale                       # 100, 500, 1000 nodes
 * deno run -A tests/bench/scale.ts 100 200    # other counts
 * ```
 * @module
 */
import { waitFor } from "../_kube.ts";
import { type Json, TestCluster, xdpCounterConfig } from "../k8s/_cluster.ts";
import { SimulatedNodes } from "../sim/nodes.ts";
import { cpuByGroup, diff, sum, writeCounts } from "./controller.ts";

const RESYNC_S = 10;
const IMAGE = "registry.sim.invalid/bytecode/xdp_counter:latest";
const digest = (n: number) => `sha256:${n.toString(16).padStart(64, "0")}`;

/** One node count's figures. */
export interface ScaleFigure {
  nodes: number;
  applyToLoadedMs: number;
  writesApply: number;
  writesChange: number;
  changeToDoneMs: number;
  writesIdle: number;
  controllerCpuMs: number;
  /** CPU time (ms) during the apply: API server, etcd, this process (the simulation). */
  cpuMs: { apiserver: number; etcd: number; simulation: number };
  controllerRssMiB: number;
  controllerPeakRssMiB: number;
}

/** The digest roll-out's figures. */
export interface RolloutFigure {
  nodes: number;
  maxUnavailable: string;
  rolloutMs: number;
  peakBetweenVersions: number;
  /** API writes from the re-push until every node and the status show the new digest. */
  writesRollout: number;
  statusDigests: Record<string, number>;
}

/** A process's CPU time (ms), RSS and peak RSS (MiB). */
function usage(pid: number): { cpuMs: number; rssMiB: number; peakMiB: number } {
  const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (k: string) => Number(status.match(new RegExp(`${k}:\\s+(\\d+)`))?.[1] ?? 0);
  return {
    cpuMs: (Number(f[11]) + Number(f[12])) * 10,
    rssMiB: kb("VmRSS") / 1024,
    peakMiB: kb("VmHWM") / 1024,
  };
}

let active: { cluster?: TestCluster; sim?: SimulatedNodes } = {};

/** Runs the scale benchmark for each node count (one growing cluster), then the digest roll-out. */
export async function runScaleBench(
  counts = [100, 500, 1000],
  log = console.error,
): Promise<{ figures: ScaleFigure[]; rollout: RolloutFigure }> {
  const sim = await SimulatedNodes.start({ latencyMs: 2, jitterMs: 8 });
  const cluster = await TestCluster.start({
    nodes: [],
    settings: { "bpfd.resync.seconds": String(RESYNC_S) },
  });
  active = { cluster, sim };
  try {
    // One replica without leader election: on a machine this loaded the test's 2 s renew deadline is missed.
    const ctl = await cluster.startController("scale", [
      "--log-level",
      "warn",
      "--workers",
      "32",
      "--no-leader-election",
    ]);
    const pid = ctl.child!.pid;
    const kubectl = (args: string[], stdin?: string) =>
      cluster.kube.kubectl(args, stdin ? { stdin } : undefined).then((r) => {
        if (r.code !== 0) throw new Error(r.stderr);
        return r;
      });
    const status = async (name: string) => (await cluster.config(name))?.status as Json;
    const figures: ScaleFigure[] = [];
    let have = 0;
    for (const n of counts) {
      while (have < n) {
        const batch = Array.from({ length: Math.min(50, n - have) }, (_, i) => `sim-${have + i + 1}`);
        await Promise.all(batch.map((name, i) =>
          cluster.core.createNode({
            body: {
              metadata: {
                name,
                labels: { "kubernetes.io/hostname": name, ...(have + i < 100 ? { rollout: "yes" } : {}) },
                annotations: { "bpfd.io/address": sim.address(name) },
              },
            },
          })
        ));
        have += batch.length;
      }
      await new Promise((r) => setTimeout(r, 2000));
      const name = `scale-${n}`;
      const w0 = await writeCounts(cluster);
      const groups = {
        apiserver: `--cert-dir=${cluster.kube.dir}/certs`,
        etcd: `--data-dir=${cluster.kube.dir}/etcd`,
      };
      const c0 = cpuByGroup(groups);
      const u0 = usage(pid), s0 = usage(Deno.pid);
      const t0 = performance.now();
      await kubectl(["apply", "-f", "-"], xdpCounterConfig(name, {}));
      await waitFor(`${n} loaded`, async () => (await status(name))?.nodes?.loaded === n, 300_000, 50);
      const applyToLoadedMs = performance.now() - t0;
      const u1 = usage(pid);
      const c1 = cpuByGroup(groups), s1 = usage(Deno.pid);
      await new Promise((r) => setTimeout(r, 1000));
      const w1 = await writeCounts(cluster);
      // A priority change: a modify on every node, no reload.
      const m0 = sim.stats.modifies;
      const t1 = performance.now();
      await kubectl(["apply", "-f", "-"], xdpCounterConfig(name, { priority: 10 }));
      await waitFor(`${n} modified`, () => Promise.resolve(sim.stats.modifies - m0 >= n), 300_000, 20);
      const changeToDoneMs = performance.now() - t1;
      await waitFor(
        "status observed",
        async () => (await status(name))?.observedGeneration === 2,
        60_000,
        50,
      );
      await new Promise((r) => setTimeout(r, 1000));
      const w2 = await writeCounts(cluster);
      await new Promise((r) => setTimeout(r, (RESYNC_S + 2) * 1000));
      const w3 = await writeCounts(cluster);
      const u2 = usage(pid);
      const f: ScaleFigure = {
        nodes: n,
        applyToLoadedMs,
        writesApply: sum(diff(w0, w1), ["leases", "events"]),
        writesChange: sum(diff(w1, w2), ["leases", "events"]) - 1, // the benchmark's own apply
        changeToDoneMs,
        writesIdle: sum(diff(w2, w3), ["leases", "events"]),
        controllerCpuMs: u1.cpuMs - u0.cpuMs,
        cpuMs: {
          apiserver: c1.apiserver - c0.apiserver,
          etcd: c1.etcd - c0.etcd,
          simulation: s1.cpuMs - s0.cpuMs,
        },
        controllerRssMiB: u2.rssMiB,
        controllerPeakRssMiB: u2.peakMiB,
      };
      f.writesApply -= 1; // the benchmark's own apply
      log(JSON.stringify(f));
      figures.push(f);
      await kubectl(["delete", "bpfprogramconfig", name, "--wait=false"]);
      await waitFor(
        "BpfPrograms gone",
        async () => (await cluster.bpfPrograms(name)).length === 0,
        300_000,
        200,
      );
    }

    // A digest roll-out on the (up to) 100 nodes labelled rollout=yes: the tag is re-pushed; the resync
    // finds it.
    const m = Math.min(100, have);
    sim.digests.set(IMAGE, digest(1));
    const spec = {
      nodeselector: { matchLabels: { rollout: "yes" } },
      bytecode: { imageurl: IMAGE, imagepullpolicy: "Always" },
      rollout: { maxunavailable: "10%" },
    };
    await kubectl(["apply", "-f", "-"], xdpCounterConfig("rollout", spec));
    await waitFor(`${m} loaded`, async () => (await status("rollout"))?.nodes?.loaded === m, 300_000, 50);
    sim.opts.reloadMs = 200;
    sim.stats.peakBetweenVersions = 0;
    const wr0 = await writeCounts(cluster);
    sim.digests.set(IMAGE, digest(2));
    const t = performance.now();
    const on = (d: string) =>
      [...sim.nodes.keys()].filter((n) => sim.digestOn(n, `rollout-${n}`) === d).length;
    await waitFor("rolled out", () => Promise.resolve(on(digest(2)) === m), 300_000, 20);
    const rolloutMs = performance.now() - t;
    await waitFor(
      "status shows the new digest",
      async () => (await status("rollout"))?.digests?.[digest(2)]?.length === m,
      60_000,
      100,
    );
    await new Promise((r) => setTimeout(r, 1000));
    const writesRollout = sum(diff(wr0, await writeCounts(cluster)), ["leases", "events"]);
    const digests = (await status("rollout")).digests as Record<string, string[]>;
    const rollout: RolloutFigure = {
      nodes: m,
      maxUnavailable: "10%",
      rolloutMs,
      peakBetweenVersions: sim.stats.peakBetweenVersions,
      writesRollout,
      statusDigests: Object.fromEntries(
        Object.entries(digests).map(([d, ns]) => [`…${d.slice(-8)}`, ns.length]),
      ),
    };
    log(JSON.stringify(rollout));
    return { figures, rollout };
  } finally {
    active = {};
    await cluster.stop();
    await sim[Symbol.asyncDispose]();
  }
}

/** The figures as a BENCHMARKS.md section. */
export function scaleMarkdown({ figures, rollout }: Awaited<ReturnType<typeof runScaleBench>>): string {
  const rows = figures.map((f) =>
    `| ${f.nodes} | ${f.applyToLoadedMs.toFixed(0)} ms | ${f.writesApply} (${
      (f.writesApply / f.nodes).toFixed(2)
    }/node) | ` +
    `${f.changeToDoneMs.toFixed(0)} ms | ${f.writesChange} | ${f.writesIdle} | ${
      [f.cpuMs.apiserver, f.cpuMs.etcd, f.controllerCpuMs, f.cpuMs.simulation].map((x) => x.toFixed(0)).join(
        " / ",
      )
    } ms | ` +
    `${f.controllerRssMiB.toFixed(0)} MiB (peak ${f.controllerPeakRssMiB.toFixed(0)}) |`
  );
  return [
    "| simulated nodes | apply → all Loaded | API writes for the apply | priority change → all modified | API writes for the change | writes in an idle resync | CPU during the apply: apiserver / etcd / controller / simulation | controller RSS |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
    "",
    `Digest roll-out (a re-pushed tag found by the resync, \`imagepullpolicy: Always\`) across ${rollout.nodes} ` +
    `simulated nodes, \`maxunavailable: ${rollout.maxUnavailable}\`, 200 ms per reload: ` +
    `${(rollout.rolloutMs / 1000).toFixed(1)} s after the re-push (resync every ${RESYNC_S} s), at most ` +
    `${rollout.peakBetweenVersions} nodes between versions at once, ${rollout.writesRollout} API writes; ` +
    `status.digests: ` +
    `${JSON.stringify(rollout.statusDigests)}.`,
  ].join("\n");
}

/** The section for `deno task bench scale`. */
export async function benchScale(counts?: number[]): Promise<{ title: string; markdown: string }> {
  return {
    title: "Controller at scale (simulated nodes)",
    markdown: scaleMarkdown(await runScaleBench(counts)),
  };
}

if (import.meta.main) {
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => {
      (active.cluster?.stop() ?? Promise.resolve()).finally(() => Deno.exit(130));
    });
  }
  const counts = Deno.args.length ? Deno.args.map(Number) : [100, 500, 1000];
  console.log(scaleMarkdown(await runScaleBench(counts)));
}
