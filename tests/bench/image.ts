// Pull time of a bytecode image (the XDP counter, ~10 KiB) from a local docker-registry on loopback:
// bpfd's image store in-process (what a load pays) and `bpfd image pull` as a process, against
// `skopeo copy docker://... dir:...`, cold (empty cache / empty target dir) and warm (image cached; skopeo
// has no cache, so its warm run is the same copy again). Medians over N runs, in one run.
//
//   deno run -A tests/bench/image.ts            (standalone; prints a table and JSON)
//   or from tests/bench/main.ts: benchImages()
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ImageStore } from "../../image/store.ts";
import { startRegistry } from "../_registry.ts";
import { pushTestImage } from "../host/image/_helpers.ts";

export interface BenchResult {
  name: string;
  unit: string;
  value: number;
  /** All samples, for spread. */
  samples?: number[];
  note?: string;
}

const CLI = fileURLToPath(new URL("../../cli/image.ts", import.meta.url));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function time(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function proc(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

export async function benchImages(runs = 10): Promise<BenchResult[]> {
  const reg = await startRegistry();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-bench-image-" });
  const results: BenchResult[] = [];
  const add = (name: string, samples: number[], note?: string) =>
    results.push({ name, unit: "ms", value: Math.round(median(samples) * 100) / 100, samples, note });
  try {
    const url = `${reg.host}/bench/xdp_counter:v1`;
    const config = { insecureRegistries: [reg.host], timeoutMs: 10_000 };
    await pushTestImage(
      new ImageStore({ ...config, cacheDir: join(dir, "push") }),
      reg,
      "bench/xdp_counter:v1",
    );
    let n = 0;

    // In-process: a fresh store on an empty cache each run, then warm runs on one cache.
    const cold: number[] = [];
    for (let i = 0; i < runs; i++) {
      const store = new ImageStore({ ...config, cacheDir: join(dir, `cold-${n++}`) });
      cold.push(await time(async () => void await store.pull({ url, pullPolicy: "Always" })));
      store.close();
    }
    add("image pull, in-process, cold cache", cold);
    const store = new ImageStore({ ...config, cacheDir: join(dir, "warm") });
    await store.pull({ url });
    const warm: number[] = [];
    const always: number[] = [];
    for (let i = 0; i < runs; i++) warm.push(await time(async () => void await store.pull({ url })));
    for (let i = 0; i < runs; i++) {
      always.push(await time(async () => void await store.pull({ url, pullPolicy: "Always" })));
    }
    store.close();
    add("image pull, in-process, warm cache (IfNotPresent: re-verify only)", warm);
    add("image pull, in-process, warm cache (Always: manifest + signature check)", always);

    // Processes: `bpfd image pull` vs `skopeo copy` to a local dir.
    const deno = Deno.execPath();
    const cliCold: number[] = [];
    for (let i = 0; i < runs; i++) {
      const cache = join(dir, `cli-${n++}`);
      cliCold.push(
        await time(() =>
          proc(deno, ["run", "-A", CLI, "pull", url, "--insecure", reg.host, "--cache", cache])
        ),
      );
    }
    add("bpfd image pull (process), cold cache", cliCold, "includes Deno start-up");
    const cliCache = join(dir, "cli-warm");
    await proc(deno, ["run", "-A", CLI, "pull", url, "--insecure", reg.host, "--cache", cliCache]);
    const cliWarm: number[] = [];
    for (let i = 0; i < runs; i++) {
      cliWarm.push(
        await time(() =>
          proc(deno, ["run", "-A", CLI, "pull", url, "--insecure", reg.host, "--cache", cliCache])
        ),
      );
    }
    add("bpfd image pull (process), warm cache", cliWarm, "includes Deno start-up");
    const skCold: number[] = [];
    for (let i = 0; i < runs; i++) {
      const target = join(dir, `skopeo-${n++}`);
      skCold.push(
        await time(() =>
          proc("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${url}`, `dir:${target}`])
        ),
      );
    }
    add("skopeo copy docker:// -> dir: (process), cold", skCold);
    const skTarget = join(dir, "skopeo-warm");
    await proc("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${url}`, `dir:${skTarget}`]);
    const skWarm: number[] = [];
    for (let i = 0; i < runs; i++) {
      skWarm.push(
        await time(() =>
          proc("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${url}`, `dir:${skTarget}`])
        ),
      );
    }
    add("skopeo copy docker:// -> dir: (process), same target again", skWarm, "skopeo has no cache");
  } finally {
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
  return results;
}

if (import.meta.main) {
  const results = await benchImages(Number(Deno.args[0] ?? 10));
  for (const r of results) {
    console.log(
      `${r.name.padEnd(72)} ${r.value.toFixed(2).padStart(9)} ${r.unit}${r.note ? `  (${r.note})` : ""}`,
    );
  }
  console.log(JSON.stringify(results.map(({ samples: _, ...r }) => r)));
}
