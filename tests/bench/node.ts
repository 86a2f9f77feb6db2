/**
 * Node runtime benchmarks, all measured in one run on the same veth:
 * load+attach of the same XDP object (a) in-process through ffi/libbpf.ts, (b) through the HTTP
 * functions of a running runtime process on its unix socket (state on a tmpfs as in /run/bpfd; (b′) on the
 * disk), (c) as `bpftool prog load` + `bpftool net attach` processes; and the runtime's RSS idle and with
 * 100 programs loaded.
 *
 * @module
 */
import { BpfAttachType, XdpFlags } from "../../ffi/abi.ts";
import * as bpf from "../../ffi/libbpf.ts";
import { BpfObject } from "../../ffi/object.ts";
import { ifNameToIndex, inNetns } from "../../ffi/libc.ts";
import { VethPair } from "../_netns.ts";
import { bytecodePath, RuntimeProcess } from "../_runtime.ts";
import { RUNTIME_DENO_ARGS, RUNTIME_V8_FLAGS } from "../../runtime/launch.ts";
import { ensureBpffs } from "../../kernel/mounts.ts";

/** One section of BENCHMARKS.md. */
export interface BenchSection {
  title: string;
  markdown: string;
}

/** p50 and p95 of samples in ms. */
export function percentiles(samples: number[]): { p50: number; p95: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50: at(0.5), p95: at(0.95) };
}

async function time(fn: () => Promise<void> | void): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

async function run(cmd: string, ...args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(stderr)}`);
}

/** Resident memory in MiB: all of it, the process's own (anonymous), file pages (the executable). */
export type Rss = { total: number; anon: number; file: number };

/** The resident memory of process `pid`. */
export async function rss(pid: number): Promise<Rss> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const mib = (field: string) => Number(status.match(new RegExp(`${field}:\\s+(\\d+)`))?.[1]) / 1024;
  return { total: mib("VmRSS"), anon: mib("RssAnon"), file: mib("RssFile") };
}

/** RSS of a bare `Deno.serve` process (same deno arguments) after it answered `requests` requests. */
async function bareServeRss(requests: number): Promise<Rss> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-bench-bare-" });
  const socket = `${dir}/bare.sock`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [...RUNTIME_DENO_ARGS, new URL("./_bare_serve.ts", import.meta.url).pathname, socket],
    stdout: "null",
  }).spawn();
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });
  try {
    for (let i = 0; i < 200; i++) {
      try {
        await (await fetch("http://bare/", { method: "POST", body: "{}", client })).body?.cancel();
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    for (let i = 0; i < requests; i++) {
      await (await fetch("http://bare/", { method: "POST", body: JSON.stringify({ i }), client })).json();
    }
    return await rss(child.pid);
  } finally {
    client.close();
    child.kill();
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

const VARIANT_ROUNDS = 30;

/** `run -A`, then the runtime's V8 flags added one by one, then its other deno options one by one. */
function argumentSteps(): string[][] {
  const denoOptions = RUNTIME_DENO_ARGS.slice(2).filter((a) => !a.startsWith("--v8-flags="));
  const denoArgs = (v8: number, options: number) => {
    const flags = RUNTIME_V8_FLAGS.slice(0, v8);
    return ["run", "-A", ...denoOptions.slice(0, options), ...(v8 ? [`--v8-flags=${flags.join(",")}`] : [])];
  };
  const steps: string[][] = [];
  for (let v8 = 0; v8 <= RUNTIME_V8_FLAGS.length; v8++) steps.push(denoArgs(v8, 0));
  for (let o = 1; o <= denoOptions.length; o++) steps.push(denoArgs(RUNTIME_V8_FLAGS.length, o));
  return steps;
}

/** The runtime's RSS with `denoArgs`, after VARIANT_ROUNDS load + attach + unload rounds and 100 loads. */
async function variantRss(denoArgs: string[], net: VethPair): Promise<Rss> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-bench-variant-" });
  const rt = await RuntimeProcess.start(dir, [], { denoArgs });
  const load = {
    bytecode: { path: bytecodePath("xdp_counter") },
    programs: [{ name: "xdp_counter", type: "xdp" }],
  };
  try {
    for (let i = 0; i < VARIANT_ROUNDS; i++) {
      const id = (await rt.call("load", load)).body.programs[0].id;
      await rt.call("attach", {
        programId: id,
        attach: { type: "xdp", iface: net.hostIf, netns: net.hostNs },
      });
      await rt.call("unload", { programId: id });
    }
    for (let i = 0; i < 100; i++) await rt.call("load", load);
    return await rss(rt.child.pid);
  } finally {
    for (const p of (await rt.call("list", {})).body.programs) await rt.call("unload", { programId: p.id });
    await rt.stop();
    await run("umount", `${dir}/fs`).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

function memoryRow(name: string, m: Rss, bare: Rss) {
  return `| ${name} | ${m.total.toFixed(1)} | ${(m.total / bare.total).toFixed(2)}× | ${
    m.anon.toFixed(1)
  } | ${m.file.toFixed(1)} |`;
}

/** A new directory with a tmpfs mounted on it (the runtime's state lives in /run/bpfd, a tmpfs). */
async function stateDirOnTmpfs(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  await run("mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", dir);
  return dir;
}

/**
 * Runs the node benchmarks with `rounds` samples per path. The paths take turns within each round, so
 * that the machine's and the kernel's slow moments fall on all of them alike.
 */
export async function benchNode(rounds = 100): Promise<BenchSection> {
  await using net = await VethPair.create();
  const object = bytecodePath("xdp_counter");
  const nsPath = `/run/netns/${net.hostNs}`;
  const ifindex = inNetns(nsPath, () => ifNameToIndex(net.hostIf));
  const pin = `/sys/fs/bpf/bpfd-bench-${Deno.pid}`;
  const mountedBpffs = await ensureBpffs("/sys/fs/bpf");
  // (b) keeps its state on a tmpfs, as the runtime does in /run/bpfd; (b′) on this machine's disk, where
  // each state write waits for fdatasync (and for whatever else the disk is syncing: etcd, VM images).
  const dir = await stateDirOnTmpfs("bpfd-bench-");
  const diskDir = await Deno.makeTempDir({ prefix: "bpfd-bench-disk-" });
  const started: Array<[RuntimeProcess, string]> = [];
  const cleanUp = async () => {
    for (const [r, d] of started) {
      await r.stop();
      await run("umount", `${d}/fs`).catch(() => {});
    }
    await run("umount", dir).catch(() => {});
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(diskDir, { recursive: true });
    await Deno.remove(pin).catch(() => {});
    if (mountedBpffs) await run("umount", "/sys/fs/bpf");
  };
  const start = async (d: string) => {
    const r = await RuntimeProcess.start(d).catch(async (err) => {
      await cleanUp();
      throw err;
    });
    started.push([r, d]);
    return r;
  };
  const rt = await start(dir), rtDisk = await start(diskDir);

  // (a) in-process: open, load, attach (XDP link, native mode); then release everything (not timed).
  const inProcess = async () => {
    let obj: BpfObject | undefined, link = -1;
    const ms = await time(() => {
      obj = BpfObject.open(object);
      obj.load();
      link = inNetns(
        nsPath,
        () =>
          bpf.linkCreate(
            "bench",
            obj!.programFd("xdp_counter"),
            ifindex,
            BpfAttachType.XDP,
            XdpFlags.DRV_MODE,
          ),
      );
    });
    bpf.closeFd(link);
    obj?.close();
    return ms;
  };
  // (b) the HTTP functions of a runtime process: load, then attach; unload after (not timed).
  const http = (rt: RuntimeProcess) => async () => {
    let id = 0;
    const ms = await time(async () => {
      const load = await rt.call("load", {
        bytecode: { path: object },
        programs: [{ name: "xdp_counter", type: "xdp" }],
      });
      id = load.body.programs[0].id;
      const attach = await rt.call("attach", {
        programId: id,
        attach: { type: "xdp", iface: net.hostIf, netns: net.hostNs },
      });
      if (attach.status !== 200) throw new Error(JSON.stringify(attach.body));
    });
    await rt.call("unload", { programId: id });
    return ms;
  };
  // (c) bpftool processes: prog load (pins), net attach; then detach and unpin (not timed).
  const processes = async () => {
    const ms = await time(async () => {
      await run("bpftool", "prog", "load", object, pin, "type", "xdp");
      await run(
        "nsenter",
        `--net=${nsPath}`,
        "bpftool",
        "net",
        "attach",
        "xdpdrv",
        "pinned",
        pin,
        "dev",
        net.hostIf,
      );
    });
    await run("nsenter", `--net=${nsPath}`, "bpftool", "net", "detach", "xdpdrv", "dev", net.hostIf);
    await Deno.remove(pin);
    return ms;
  };

  const paths = [inProcess, http(rt), http(rtDisk), processes];
  const samples: number[][] = paths.map(() => []);
  let idleRss: Rss = { total: 0, anon: 0, file: 0 }, fullRss = idleRss;
  try {
    idleRss = await rss(rt.child.pid);
    for (let i = 0; i < rounds; i++) {
      for (let k = 0; k < paths.length; k++) {
        const p = (i + k) % paths.length;
        samples[p].push(await paths[p]());
      }
    }
    for (let i = 0; i < 100; i++) {
      await rt.call("load", { bytecode: { path: object }, programs: [{ name: "xdp_counter", type: "xdp" }] });
    }
    fullRss = await rss(rt.child.pid);
    for (const p of (await rt.call("list", {})).body.programs) await rt.call("unload", { programId: p.id });
  } finally {
    await cleanUp();
  }
  const [inProcessMs, httpMs, httpDiskMs, processesMs] = samples;
  const bare = await bareServeRss(3 * rounds + 200);
  const variants: { args: string; rss: Rss }[] = [];
  for (const denoArgs of argumentSteps()) {
    variants.push({ args: denoArgs.slice(2).join(" "), rss: await variantRss(denoArgs, net) });
  }

  const a = percentiles(inProcessMs), b = percentiles(httpMs), bDisk = percentiles(httpDiskMs);
  const c = percentiles(processesMs);
  const ratio = (x: number, y: number) => (x / y).toFixed(2);
  const row = (name: string, p: { p50: number; p95: number }) =>
    `| ${name} | ${p.p50.toFixed(2)} | ${p.p95.toFixed(2)} | ${ratio(p.p50, a.p50)}× | ${
      ratio(p.p95, a.p95)
    }× |`;
  const markdown = [
    `Load + attach of \`xdp_counter.bpf.o\` to a veth (native XDP), ${rounds} rounds, the four paths in turn:`,
    "",
    "| path | p50 ms | p95 ms | p50 vs (a) | p95 vs (a) |",
    "| --- | ---: | ---: | ---: | ---: |",
    row("(a) in-process, ffi/libbpf.ts", a),
    row("(b) HTTP functions on the runtime (unix socket), state on tmpfs as in /run/bpfd", b),
    row("(b′) the same, state on this machine's disk (/tmp)", bDisk),
    row("(c) `bpftool prog load` + `bpftool net attach`", c),
    "",
    `Target (b) ≤ 1.3× (a): p50 ${ratio(b.p50, a.p50)}×, p95 ${ratio(b.p95, a.p95)}× — ${
      b.p50 <= 1.3 * a.p50 && b.p95 <= 1.3 * a.p95 ? "met" : "NOT met"
    }.`,
    "",
    "| memory, MiB | RSS | vs bare Deno.serve | own (RssAnon) | file pages (RssFile: mostly the Deno executable) |",
    "| --- | ---: | ---: | ---: | ---: |",
    memoryRow("bare `Deno.serve` (baseline)", bare, bare),
    memoryRow("runtime, idle", idleRss, bare),
    memoryRow("runtime, 100 programs loaded", fullRss, bare),
    "",
    `Target RSS ≤ 64 MiB with 100 programs: ${fullRss.total <= 64 ? "met" : "NOT met"} ` +
    `(RSS ${fullRss.total.toFixed(1)} MiB, of which the runtime's own memory is ${
      fullRss.anon.toFixed(1)
    } MiB).`,
    "",
    `What each deno argument of runtime/launch.ts saves: the runtime started with \`run -A\` and the arguments added one at a time; each time ${VARIANT_ROUNDS} load + attach + unload rounds, then 100 programs loaded:`,
    "",
    "| deno arguments after `run -A` | RSS, MiB | vs bare Deno.serve | own (RssAnon) | file pages (RssFile) |",
    "| --- | ---: | ---: | ---: | ---: |",
    ...variants.map((v) => memoryRow(v.args ? `\`${v.args}\`` : "(none)", v.rss, bare)),
  ].join("\n");
  return { title: "Node runtime: load + attach, RSS", markdown };
}
