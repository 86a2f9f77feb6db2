/**
 * Cluster benchmark (issue 13), on the real one-node cluster of deploy/cluster.ts with bpfd's image:
 * - `deploy` (the library call `deno task deploy` makes, image already on the node) → every bpfd pod Ready
 *   and the controller's Lease held;
 * - the seed's config (XDP on the node's eth0; bytecode from the node pod's image by `path`, so no registry
 *   is timed) applied → the node's BpfProgram `Loaded`, and deleted → BpfProgram gone and eth0 empty.
 * Medians of BPFD_BENCH_ROUNDS (default 5; deploy: 3) rounds. The cluster is started if it is not up (and
 * stopped again), bpfd undeployed at the end.
 *
 * ```sh
 * deno run -A tests/bench/cluster.ts
 * ```
 * `benchCluster()` returns a BENCHMARKS.md section for `deno task bench cluster`.
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { deploy, undeploy } from "../../deploy/deploy.ts";
import { importImage } from "../../deploy/cluster.ts";
import {
  IMAGE_ARCHIVE,
  IMAGE_REF,
  KUBECONFIG,
  useCluster,
  waitUntil,
  xdpCounterConfig,
  xdpOnEth0,
} from "../cluster/_cluster.ts";
import type { BenchSection } from "./node.ts";

const ROUNDS = Number(Deno.env.get("BPFD_BENCH_ROUNDS") ?? 5);
const DEPLOY_ROUNDS = Math.min(ROUNDS, 3);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Polls `check` every 50 ms; the time (ms) from `t0` to the first true. */
async function until(
  t0: number,
  what: string,
  seconds: number,
  check: () => Promise<boolean>,
): Promise<number> {
  const deadline = t0 + seconds * 1000;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface ClusterFigures {
  deployToReadyMs: number[];
  applyToLoadedMs: number[];
  deleteToGoneMs: number[];
}

export async function measureCluster(): Promise<ClusterFigures> {
  const cluster = await useCluster();
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(KUBECONFIG);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const coord = kc.makeApiClient(k8s.CoordinationV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const nsGone = async () => {
    try {
      await core.readNamespace({ name: "bpfd" });
      return false;
    } catch {
      return true;
    }
  };
  const undeployAll = async () => {
    await undeploy({ kc, all: true, timeoutMs: 30_000 });
    await waitUntil("namespace bpfd gone", 180, nsGone);
  };
  const figures: ClusterFigures = { deployToReadyMs: [], applyToLoadedMs: [], deleteToGoneMs: [] };
  try {
    await importImage(IMAGE_ARCHIVE, IMAGE_REF);
    if (!(await nsGone())) await undeployAll();
    for (let round = 0; round < DEPLOY_ROUNDS; round++) {
      const t0 = Date.now();
      await deploy({ kc, image: IMAGE_REF, imagePullPolicy: "Never" });
      figures.deployToReadyMs.push(
        await until(t0, "bpfd's pods Ready and the Lease held", 180, async () => {
          const pods = (await core.listNamespacedPod({ namespace: "bpfd" })).items;
          const ready = pods.length === 3 &&
            pods.every((p) => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));
          if (!ready) return false;
          const lease = await coord.readNamespacedLease({ name: "bpfd-controller", namespace: "bpfd" });
          return pods.some((p) => lease.spec?.holderIdentity?.startsWith(p.metadata!.name!));
        }),
      );
      if (round < DEPLOY_ROUNDS - 1) await undeployAll();
    }
    const crd = { group: "bpfd.io", version: "v1alpha1" };
    const programs = async () =>
      // deno-lint-ignore no-explicit-any
      ((await custom.listClusterCustomObject({ ...crd, plural: "bpfprograms" })) as any).items as any[];
    for (let round = 0; round < ROUNDS; round++) {
      const name = `bench-${round}`;
      const t0 = Date.now();
      await custom.createClusterCustomObject({
        ...crd,
        plural: "bpfprogramconfigs",
        body: xdpCounterConfig(name),
      });
      figures.applyToLoadedMs.push(
        await until(
          t0,
          `${name} Loaded`,
          60,
          async () =>
            (await programs()).some((p) =>
              p.metadata.labels?.owningConfig === name &&
              // deno-lint-ignore no-explicit-any
              p.status?.conditions?.some((c: any) => c.type === "Loaded" && c.status === "True")
            ),
        ),
      );
      const t1 = Date.now();
      await custom.deleteClusterCustomObject({ ...crd, plural: "bpfprogramconfigs", name });
      figures.deleteToGoneMs.push(
        await until(t1, `${name} gone`, 60, async () => (await programs()).length === 0),
      );
      if ((await xdpOnEth0()).length) throw new Error(`${name}: eth0 still has an XDP program`);
    }
  } finally {
    await undeployAll().catch(() => {});
    await cluster.release();
  }
  return figures;
}

export async function benchCluster(): Promise<BenchSection> {
  const f = await measureCluster();
  const row = (what: string, xs: number[]) =>
    `| ${what} | ${(median(xs) / 1000).toFixed(2)} s | ${xs.map((x) => (x / 1000).toFixed(2)).join(", ")} |`;
  return {
    title: "A real one-node cluster: deploy and the seed's config (issue 13)",
    markdown: [
      "| what | median | rounds (s) |",
      "| --- | ---: | --- |",
      row("`deploy` → every bpfd pod Ready, Lease held (image on the node)", f.deployToReadyMs),
      row("seed config applied → node's BpfProgram Loaded", f.applyToLoadedMs),
      row("config deleted → BpfProgram gone, eth0 empty", f.deleteToGoneMs),
    ].join("\n"),
  };
}

if (import.meta.main) {
  const { title, markdown } = await benchCluster();
  console.log(`## ${title}\n\n${markdown}\n`);
}
