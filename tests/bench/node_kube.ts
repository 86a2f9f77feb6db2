/**
 * The node runtime's memory in Kubernetes mode (`deno task bench node-kube`): the RSS of a runtime with TLS,
 * TokenReview + SubjectAccessReview and a BpfPolicy watch on a real kube-apiserver, idle after a few
 * authenticated calls, against the embedded default (unix socket only) of the same checkout in the same
 * round. `BPFD_BENCH_COMPARE=<another checkout>` (main, say) measures that checkout too, in turn.
 *
 * @module
 */
import { startKube } from "../_kube.ts";
import { RuntimeProcess } from "../_runtime.ts";
import { deploy } from "../../deploy/deploy.ts";
import {
  makeNodeTls,
  nodeToken,
  SecureRuntime,
  serviceAccountToken,
  tokenKubeconfig,
} from "../k8s/deploy/_secure.ts";
import { type BenchSection, type Rss, rss } from "./node.ts";

const here = new URL("../..", import.meta.url).pathname;
const ROUNDS = 3;
const CALLS = 5;
const IDLE_MS = 5000;

const idle = () => new Promise((r) => setTimeout(r, IDLE_MS));

/** The embedded default (`deno task start` with no configuration) after CALLS `list` calls. */
async function embedded(checkout: string): Promise<Rss> {
  const dir = await Deno.makeTempDir({ prefix: "bk-" }); // short: the socket's path has a limit
  const rt = await RuntimeProcess.start(dir, [], { checkout });
  try {
    for (let i = 0; i < CALLS; i++) {
      if ((await rt.call("list", {})).status !== 200) throw new Error("list failed");
    }
    await idle();
    return await rss(rt.child.pid);
  } finally {
    await rt.stop();
    await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** What a runtime in Kubernetes mode needs of the API server. */
interface KubeMode {
  tls: { ca: string; cert: string; key: string };
  kubeconfig: string;
  token: string;
}

/** TLS, Kubernetes auth and the BpfPolicy watch, after CALLS authenticated `list` calls and one refused. */
async function kubernetes(checkout: string, dir: string, k: KubeMode): Promise<Rss> {
  const rt = await SecureRuntime.start(
    dir,
    k.tls,
    { mode: "kubernetes", kubeconfig: k.kubeconfig, nodeName: "bench-node" },
    { checkout, config: { policy: { source: "kubernetes" } } },
  );
  try {
    for (let i = 0; i < CALLS; i++) {
      const r = await rt.call("list", {}, k.token);
      if (r.status !== 200) throw new Error(`list: ${r.status} ${JSON.stringify(r.body)}`);
    }
    if ((await rt.call("list", {}, "not-a-token")).status !== 401) throw new Error("a bad token passed");
    await idle();
    return await rss(rt.child!.pid);
  } finally {
    await rt.destroy(k.token);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The section for BENCHMARKS.md. */
export async function benchNodeKube(): Promise<BenchSection> {
  const compare = Deno.env.get("BPFD_BENCH_COMPARE")?.replace(/\/?$/, "/");
  const checkouts = [["this checkout", here], ...(compare ? [[compare, compare]] : [])];
  const kube = await startKube();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-bench-kube-" });
  try {
    await deploy({ kc: kube.kubeConfig(), image: "registry.example/bpfd:test" });
    const k: KubeMode = {
      tls: await makeNodeTls(dir),
      kubeconfig: await tokenKubeconfig(
        kube,
        `${dir}/node.kubeconfig`,
        await serviceAccountToken(kube, "bpfd-node"),
      ),
      token: await nodeToken(kube, "bpfd-controller", "bench-node"),
    };
    const samples = new Map<string, { embedded: Rss[]; kube: Rss[] }>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, checkout] of checkouts) {
        const s = samples.get(name) ?? { embedded: [], kube: [] };
        samples.set(name, s);
        const sub = await Deno.makeTempDir({ dir, prefix: "rt-" });
        s.embedded.push(await embedded(checkout));
        s.kube.push(await kubernetes(checkout, sub, k));
      }
    }
    const row = (name: string, mode: string, xs: Rss[], base: Rss[]) => {
      const total = xs.map((x) => x.total);
      return `| ${name} | ${mode} | ${median(total).toFixed(1)} (${Math.min(...total).toFixed(1)}–${
        Math.max(...total).toFixed(1)
      }) | ${(median(total) / median(base.map((b) => b.total))).toFixed(2)}× | ${
        median(xs.map((x) => x.anon)).toFixed(1)
      } | ${median(xs.map((x) => x.file)).toFixed(1)} |`;
    };
    const rows = [...samples].flatMap(([name, s]) => [
      row(name, "embedded default (socket)", s.embedded, s.embedded),
      row(name, "Kubernetes mode (TLS, TokenReview, BpfPolicy watch)", s.kube, s.embedded),
    ]);
    return {
      title: "Node runtime in Kubernetes mode: memory",
      markdown: [
        `RSS in MiB, median of ${ROUNDS} rounds (smallest–largest); idle ${
          IDLE_MS / 1000
        } s after ${CALLS} ` +
        "`list` calls (Kubernetes mode: with a ServiceAccount token, plus one refused token).",
        "",
        "| checkout | runtime | RSS MiB | vs embedded default | own (RssAnon) | file pages (RssFile) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        ...rows,
      ].join("\n"),
    };
  } finally {
    await kube.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
