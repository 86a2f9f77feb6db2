/**
 * Inventory and metrics benchmarks (`deno task bench inventory`), against a real kube-apiserver: the
 * runtime's RSS and `list` latency (p50/p95 over the unix socket, all programs) with 100 and 1,000
 * programs loaded, with metrics and inventory off, metrics on, and both on; and the inventory writes
 * per minute while 100 programs are loaded and unloaded without pause.
 *
 * @module
 */
import { startKube } from "../_kube.ts";
import { bytecodePath, RuntimeProcess } from "../_runtime.ts";
import { INVENTORY } from "../../model/inventory.ts";
import { type BenchSection, percentiles } from "./node.ts";

const root = new URL("../..", import.meta.url).pathname;
const LOAD = {
  bytecode: { path: bytecodePath("xdp_counter") },
  programs: [{ name: "xdp_counter", type: "xdp" }],
};

async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(status.match(/VmRSS:\s+(\d+)/)?.[1]) / 1024;
}

async function withRuntime<T>(
  config: Record<string, unknown>,
  fn: (rt: RuntimeProcess) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-bench-inv-" });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
  const rt = await RuntimeProcess.start(dir, ["--config", `${dir}/config.json`]);
  try {
    return await fn(rt);
  } finally {
    for (const p of (await rt.call("list", {})).body.programs ?? []) {
      await rt.call("unload", { programId: p.id });
    }
    await rt.stop();
    await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

interface Sample {
  variant: string;
  programs: number;
  rss: number;
  p50: number;
  p95: number;
}

/** Loads `count` programs, lets the inventory settle, then samples RSS and 50 `list` calls. */
async function measure(variant: string, config: Record<string, unknown>, count: number): Promise<Sample> {
  return await withRuntime(config, async (rt) => {
    for (let i = 0; i < count; i++) {
      const r = await rt.call("load", LOAD);
      if (r.status !== 200) throw new Error(`load ${i}: ${JSON.stringify(r.body)}`);
    }
    await new Promise((r) => setTimeout(r, 8000)); // the inventory's snapshot and write, metrics scraped
    if (config.metrics !== false) await (await rt.fetch("/metrics")).text();
    const times: number[] = [];
    for (let i = 0; i < 50; i++) {
      const start = performance.now();
      const r = await rt.call("list", {});
      times.push(performance.now() - start);
      if (r.status !== 200) throw new Error("list failed");
    }
    const { p50, p95 } = percentiles(times);
    return { variant, programs: count, rss: await rssMiB(rt.child.pid), p50, p95 };
  });
}

/** Writes to the node's inventory object while 100 programs are loaded and unloaded for `seconds`. */
async function writesPerMinute(
  kube: Awaited<ReturnType<typeof startKube>>,
  config: Record<string, unknown>,
  seconds: number,
): Promise<{ writes: number; cycles: number }> {
  const custom = kube.kubeConfig().makeApiClient((await import("@kubernetes/client-node")).CustomObjectsApi);
  return await withRuntime(config, async (rt) => {
    await new Promise((r) => setTimeout(r, 3000));
    const versions = new Set<string>();
    let cycles = 0, stop = false;
    const poll = (async () => {
      while (!stop) {
        const o = await custom.getClusterCustomObject({
          group: INVENTORY.group,
          version: INVENTORY.version,
          plural: INVENTORY.plural,
          name: "bench-node",
        }).catch(() => undefined) as { metadata?: { resourceVersion?: string } } | undefined;
        if (o?.metadata?.resourceVersion) versions.add(o.metadata.resourceVersion);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const until = Date.now() + seconds * 1000;
    const before = versions.size;
    while (Date.now() < until) {
      const ids: number[] = [];
      for (let i = 0; i < 100 && Date.now() < until; i++) {
        ids.push((await rt.call("load", LOAD)).body.programs[0].id);
      }
      for (const id of ids) await rt.call("unload", { programId: id });
      cycles++;
    }
    stop = true;
    await poll;
    return { writes: ((versions.size - Math.max(before, 1)) * 60) / seconds, cycles };
  });
}

/** The section for BENCHMARKS.md. */
export async function benchInventory(): Promise<BenchSection> {
  const kube = await startKube();
  try {
    const r = await kube.kubectl(["apply", "-f", `${root}crds/bpfd.io_bpfnodeinventories.yaml`]);
    if (r.code !== 0) throw new Error(r.stderr);
    await new Promise((r) => setTimeout(r, 2000));
    const inventory = { kubeconfig: kube.kubeconfig(), minWriteSeconds: 5 };
    const variants: Array<[string, Record<string, unknown>]> = [
      ["metrics off, inventory off", { metrics: false }],
      ["metrics on, inventory off", {}],
      ["metrics on, inventory on", { auth: { nodeName: "bench-node" }, inventory }],
    ];
    const samples: Sample[] = [];
    for (const count of [100, 1000]) {
      for (const [name, config] of variants) samples.push(await measure(name, config, count));
    }
    const churn = await writesPerMinute(kube, { auth: { nodeName: "bench-node" }, inventory }, 60);
    const rows = samples.map((s) =>
      `| ${s.programs} | ${s.variant} | ${s.rss.toFixed(1)} | ${s.p50.toFixed(1)} | ${s.p95.toFixed(1)} |`
    );
    const big = samples.find((s) => s.programs === 1000 && s.variant.endsWith("inventory on"))!;
    return {
      title: "Inventory and metrics (issue 16)",
      markdown: [
        "| programs | runtime | RSS MiB | list p50 ms | list p95 ms |",
        "| ---: | --- | ---: | ---: | ---: |",
        ...rows,
        "",
        `Targets with 1,000 programs, inventory on: RSS ≤ 80 MiB ${big.rss <= 80 ? "met" : "NOT met"} ` +
        `(${big.rss.toFixed(1)}), list p50 ≤ 20 ms ${big.p50 <= 20 ? "met" : "NOT met"} (${
          big.p50.toFixed(1)
        }).`,
        "",
        `Inventory writes while 100 programs are loaded and unloaded without pause for 60 s ` +
        `(${churn.cycles} cycles, minWriteSeconds 5): ${
          churn.writes.toFixed(1)
        } writes per minute (at most 12).`,
      ].join("\n"),
    };
  } finally {
    await kube.stop();
  }
}
