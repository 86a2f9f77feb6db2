/**
 * `deno task bench`: runs every benchmark section in one process and prints BENCHMARKS.md-ready
 * markdown. Sections: `node` (load+attach paths, RSS). `deno task bench node` runs only the named ones.
 *
 * @module
 */
import { benchNode, type BenchSection } from "./node.ts";

const SECTIONS: Record<string, () => Promise<BenchSection>> = {
  node: () => benchNode(),
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
