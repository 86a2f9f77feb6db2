/**
 * `deno task bench`: runs every benchmark section in one process and prints BENCHMARKS.md-ready
 * markdown. Sections: `node` (load+attach paths, RSS), `images` (pull vs skopeo), `chain` (programs sharing a
 * hook), `controller` (apply to Loaded for 1/10/50 node runtimes), `fuzz` (10,000 bad requests over the
 * socket), `policy` (BpfPolicy's cost), `inventory` (RSS, list latency, writes), `node-kube` (the runtime's RSS in Kubernetes mode), `scale` (100/500/1,000 simulated
 * nodes), `trace` (session start to first line vs bpftrace by hand), `cluster` (deploy and the seed's config
 * on a real one-node cluster). `deno task bench node` runs only the named ones.
 *
 * @module
 */
import { benchChain } from "./chain.ts";
import { benchCluster } from "./cluster.ts";
import { benchController } from "./controller.ts";
import { benchFuzz } from "./fuzz.ts";
import { benchImages } from "./image.ts";
import { benchInventory } from "./inventory.ts";
import { benchNode, type BenchSection } from "./node.ts";
import { benchNodeKube } from "./node_kube.ts";
import { benchTrace } from "./trace.ts";
import { benchPolicy } from "./policy.ts";
import { benchScale } from "./scale.ts";

/** The image pull figures as a table, each with its ratio to a cold `skopeo copy` of the same image. */
async function images(): Promise<BenchSection> {
  const results = await benchImages();
  const skopeo = results.find((r) => r.name.includes("skopeo") && r.name.includes("cold"))?.value;
  const rows = results.map((r) =>
    `| ${r.name} | ${r.value.toFixed(2)} ${r.unit} | ${skopeo ? `${(r.value / skopeo).toFixed(2)}×` : ""} |`
  );
  return {
    title: "Image pull vs skopeo",
    markdown: ["| what | median | vs skopeo cold |", "| --- | ---: | ---: |", ...rows].join("\n"),
  };
}

const SECTIONS: Record<string, () => Promise<BenchSection>> = {
  node: () => benchNode(),
  images,
  chain: () => benchChain(),
  controller: () => benchController(),
  trace: () => benchTrace(),
  fuzz: () => benchFuzz(),
  policy: () => benchPolicy(),
  inventory: () => benchInventory(),
  "node-kube": () => benchNodeKube(),
  scale: () => benchScale(),
  cluster: () => benchCluster(),
};

const chosen = Deno.args.length ? Deno.args : Object.keys(SECTIONS);
for (const name of chosen) {
  const section = SECTIONS[name];
  if (!section) {
    console.error(`unknown section ${name} (sections: ${Object.keys(SECTIONS).join(", ")})`);
    Deno.exit(2);
  }
  const { title, markdown } = await section();
  console.log(
    `## ${title}\n\n${markdown}\n\n_Command: \`deno task bench ${name}\` on ${
      new Date().toISOString().slice(0, 10)
    }._\n`,
  );
}
