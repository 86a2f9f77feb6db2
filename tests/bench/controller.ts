/**
 * Controller benchmark: time from `kubectl apply` of a BpfProgramConfig (nodeselector {}) to every node
 * Loaded (the config's status says so), for 1, 10 and 50 node runtimes — real runtime processes, each in
 * its own network namespace with its own eth0 and Node object, one controller process, a real
 * kube-apiserver — and the API writes each change costs (from the API server's own request counters,
 * leases and the benchmark's own requests left out). Also the time to unload everywhere on delete, and
 * the writes of an idle resync (should be none).
 *
 * ```sh
 * deno run -A tests/bench/controller.ts            # 1, 10, 50 nodes
 * deno run -A tests/bench/controller.ts 1 5        # other counts
 * ```
 * `benchController()` returns a BENCHMARKS.md section for `deno task bench`.
 * @module
 */
import { waitFor } from "../_kube.ts";
import { type Json, TestCluster } from "../k8s/_cluster.ts";

const root = new URL("../..", import.meta.url).pathname;
/** Apply/delete rounds per node count; the figures are medians. */
const ROUNDS = Number(Deno.env.get("BPFD_BENCH_ROUNDS") ?? 3);

/** CPU time (ms) of the processes whose command line contains each pattern, summed per group. */
export function cpuByGroup(groups: Record<string, string>): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(Object.keys(groups).map((k) => [k, 0]));
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ");
      const group = Object.entries(groups).find(([, pat]) => cmd.includes(pat))?.[0];
      if (!group) continue;
      const f = Deno.readTextFileSync(`/proc/${e.name}/stat`).split(") ")[1].split(" ");
      out[group] += (Number(f[11]) + Number(f[12])) * 1000 / 100; // utime + stime, USER_HZ = 100
    } catch { /* gone */ }
  }
  return out;
}

/** Write requests the API server counted, by resource (leases and events apart). */
export async function writeCounts(cluster: TestCluster): Promise<Map<string, number>> {
  const res = await fetch(`${cluster.kube.server}/metrics`, {
    client: Deno.createHttpClient({ caCerts: [cluster.kube.caPem] }),
    headers: { authorization: `Bearer ${cluster.kube.admin.token}` },
  });
  const text = await res.text();
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    const labels = Object.fromEntries(
      [...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (!["POST", "PUT", "PATCH", "DELETE"].includes(labels.verb)) continue;
    const key = `${labels.resource}${labels.subresource ? `/${labels.subresource}` : ""}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return counts;
}

/** What `b` counted beyond `a`, by key. */
export function diff(a: Map<string, number>, b: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of b) {
    const d = v - (a.get(k) ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

/** The sum of the counts, without the keys in `skip`. */
export const sum = (o: Record<string, number>, skip: string[] = []) =>
  Object.entries(o).filter(([k]) => !skip.includes(k)).reduce((s, [, v]) => s + v, 0);

export interface ControllerFigure {
  nodes: number;
  applyToLoadedMs: number;
  /** The same reconcile sent straight to every runtime at once (no API server, no controller). */
  nodeFloorMs: number;
  deleteToUnloadedMs: number;
  writesApply: Record<string, number>;
  writesDelete: Record<string, number>;
  writesIdle: Record<string, number>;
  startRuntimesMs: number;
  /** apply → Loaded of every round (ms). */
  rounds: number[];
  /** CPU time per process group during the last round's apply → Loaded (ms). */
  cpuMs: Record<string, number>;
}

/**
 * The program the benchmark loads: XDP (as the seed), or with BPFD_BENCH_TYPE=TCX a TCX program, or with
 * BPFD_BENCH_TYPE=Tracepoint a tracepoint program (its attach does not take the kernel's rtnl lock, so the
 * node side does not serialize the "nodes" that share this machine's kernel).
 */
const TYPE = (["TCX", "Tracepoint"] as const).find((t) => t === Deno.env.get("BPFD_BENCH_TYPE")) ?? "XDP";

function config(name: string) {
  const program = {
    XDP: { name: "xdp_counter", object: "xdp_counter", attachpoint: { interface: "eth0" } },
    TCX: {
      name: "tc_counter",
      object: "tc_counter",
      attachpoint: { interface: "eth0", direction: "ingress" },
    },
    Tracepoint: {
      name: "enter_getppid",
      object: "tracepoint_counter",
      attachpoint: { tracepoint: "syscalls/sys_enter_getppid" },
    },
  }[TYPE];
  return JSON.stringify({
    apiVersion: "bpfd.io/v1alpha1",
    kind: "BpfProgramConfig",
    metadata: { name },
    spec: {
      name: program.name,
      type: TYPE,
      nodeselector: {},
      ...(TYPE === "Tracepoint" ? {} : { priority: 0 }),
      attachpoint: program.attachpoint,
      bytecode: { path: `${root}bytecode/build/${program.object}.bpf.o` },
    },
  });
}

/** The cluster being measured, for the signal handler to clean up. */
let active: TestCluster | undefined;

/** Runs the benchmark for each node count, growing one cluster. */
export async function runControllerBench(
  counts = [1, 10, 50],
  log = console.error,
): Promise<ControllerFigure[]> {
  const cluster = await TestCluster.start({ nodes: [], settings: { "bpfd.resync.seconds": "5" } });
  active = cluster;
  const figures: ControllerFigure[] = [];
  try {
    const workers = Deno.env.get("BPFD_BENCH_WORKERS");
    await cluster.startController("bench", [
      "--log-level",
      "warn",
      ...(workers ? ["--workers", workers] : []),
    ]);
    let have = 0;
    for (const n of counts) {
      const t0 = performance.now();
      while (have < n) {
        const batch = Math.min(8, n - have);
        await Promise.all(
          Array.from({ length: batch }, (_, i) => cluster.addNode(`node-${have + i + 1}`, {}, have + i + 1)),
        );
        have += batch;
      }
      const startRuntimesMs = performance.now() - t0;
      // Node runtimes are long-running: warm each one's load path (JIT, libbpf) before measuring.
      await Promise.all([...cluster.runtimes.values()].map(async (rt) => {
        const r = await rt.call("load", {
          bytecode: { path: `${root}bytecode/build/xdp_counter.bpf.o` },
          programs: [{ name: "xdp_counter", type: "xdp" }],
        });
        for (const p of r.body.programs ?? []) await rt.call("unload", { programId: p.id });
      }));
      await new Promise((r) => setTimeout(r, 2000));
      // The node-side floor: the same reconcile straight to every runtime at once (no API server, no
      // controller). On one machine all "nodes" share one kernel, whose XDP attach is serialized.
      const spec = JSON.parse(config("floor")).spec;
      const floors: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const tf = performance.now();
        await Promise.all([...cluster.runtimes.values()].map(async (rt) => {
          const r = await rt.call("reconcile", { name: `floor-${rt.name}`, spec });
          if (r.status !== 200) throw new Error(JSON.stringify(r.body));
        }));
        floors.push(performance.now() - tf);
        await Promise.all(
          [...cluster.runtimes.values()].map((rt) =>
            rt.call("reconcile", { name: `floor-${rt.name}`, spec: null })
          ),
        );
      }
      const rounds: Array<{ up: number; down: number }> = [];
      const cpus: Array<Record<string, number>> = [];
      let w0 = new Map<string, number>(), w1 = w0, w2 = w0, w3 = w0;
      const name = `bench-${n}`;
      for (let round = 0; round < ROUNDS; round++) {
        const first = round === 0;
        if (first) w0 = await writeCounts(cluster);
        const groups = {
          apiserver: `--cert-dir=${cluster.kube.dir}/certs`,
          etcd: `--data-dir=${cluster.kube.dir}/etcd`,
          controller: `--kubeconfig ${cluster.kube.kubeconfig()}`,
          runtimes: `--state-dir ${cluster.dir}/`,
        };
        const c0 = cpuByGroup(groups);
        const t1 = performance.now();
        const r = await cluster.kube.kubectl(["apply", "-f", "-"], { stdin: config(name) });
        if (r.code !== 0) throw new Error(r.stderr);
        await waitFor(
          `${n} nodes loaded`,
          async () => {
            const c = await cluster.config(name);
            return c?.status?.nodes?.loaded === n && c.status.nodes.selected === n;
          },
          300_000,
          20,
        );
        const up = performance.now() - t1;
        const c1 = cpuByGroup(groups);
        cpus.push(Object.fromEntries(Object.keys(c0).map((k) => [k, c1[k] - c0[k]])));
        if (first) {
          // Let the last writes land before counting; then two resyncs with nothing to do.
          await new Promise((r) => setTimeout(r, 500));
          w1 = await writeCounts(cluster);
          await new Promise((r) => setTimeout(r, 11_000));
          w2 = await writeCounts(cluster);
        }
        const t2 = performance.now();
        const d = await cluster.kube.kubectl(["delete", "bpfprogramconfig", name, "--timeout=300s"]);
        if (d.code !== 0) throw new Error(d.stderr);
        await waitFor(
          "BpfPrograms gone",
          async () => (await cluster.bpfPrograms(name)).length === 0,
          300_000,
          20,
        );
        const down = performance.now() - t2;
        if (first) {
          await new Promise((r) => setTimeout(r, 500));
          w3 = await writeCounts(cluster);
        }
        for (const rt of cluster.runtimes.values()) {
          const left = (await rt.programs()).filter((p: Json) =>
            p.program.metadata["bpfd.io/config"] === name
          );
          if (left.length) throw new Error(`${rt.name} still has ${name}`);
        }
        rounds.push({ up, down });
        await new Promise((r) => setTimeout(r, 1000));
      }
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const applyToLoadedMs = median(rounds.map((r) => r.up));
      const nodeFloorMs = median(floors);
      const deleteToUnloadedMs = median(rounds.map((r) => r.down));
      const f: ControllerFigure = {
        nodes: n,
        applyToLoadedMs,
        nodeFloorMs,
        deleteToUnloadedMs,
        rounds: rounds.map((r) => Math.round(r.up)),
        cpuMs: cpus[cpus.length - 1],
        writesApply: diff(w0, w1),
        writesIdle: diff(w1, w2),
        writesDelete: diff(w2, w3),
        startRuntimesMs,
      };
      log(JSON.stringify(f));
      figures.push(f);
    }
  } finally {
    active = undefined;
    await cluster.stop();
  }
  return figures;
}

/** The figures as a BENCHMARKS.md section. */
export function controllerMarkdown(figures: ControllerFigure[]): string {
  const one = figures.find((f) => f.nodes === 1)?.applyToLoadedMs;
  const ctlWrites = (w: Record<string, number>, own: number) => {
    const total = sum(w, ["leases"]) - own;
    return `${total} (${
      Object.entries(w).filter(([k]) => k !== "leases").map(([k, v]) => `${k} ${v}`).join(", ")
    })`;
  };
  const rows = figures.map((f) => {
    const vs = one ? `${(f.applyToLoadedMs / one).toFixed(2)}×` : "";
    const cpu = ["apiserver", "etcd", "controller", "runtimes"].map((k) => (f.cpuMs[k] ?? 0).toFixed(0)).join(
      " / ",
    );
    return `| ${f.nodes} | ${f.applyToLoadedMs.toFixed(0)} ms | ${vs} | ${f.nodeFloorMs.toFixed(0)} ms | ` +
      `${cpu} | ${f.deleteToUnloadedMs.toFixed(0)} ms | ${ctlWrites(f.writesApply, 1)} | ` +
      `${ctlWrites(f.writesDelete, 1)} | ${sum(f.writesIdle, ["leases"])} |`;
  });
  return [
    "| nodes | apply → all Loaded | vs 1 node | node-side floor | CPU ms during the apply: apiserver / etcd / controller / runtimes | delete → all unloaded | API writes for the apply | API writes for the delete | writes in 2 idle resyncs |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |",
    ...rows,
  ].join("\n");
}

export async function benchController(counts?: number[]): Promise<{ title: string; markdown: string }> {
  return {
    title: `Controller: apply to Loaded (${TYPE})`,
    markdown: controllerMarkdown(await runControllerBench(counts)),
  };
}

if (import.meta.main) {
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => {
      console.error(`${sig}: cleaning up`);
      (active?.stop() ?? Promise.resolve()).finally(() => Deno.exit(130));
    });
  }
  const counts = Deno.args.length ? Deno.args.map(Number) : [1, 10, 50];
  const figures = await runControllerBench(counts);
  console.log(controllerMarkdown(figures));
}
