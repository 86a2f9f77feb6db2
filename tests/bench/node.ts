/**
 * Node runtime benchmarks, all measured in one run on the same veth:
 * load+attach of the same XDP object (a) in-process through ffi/libbpf.ts, (b) through the HTTP
 * functions of a running runtime process on its unix socket, (c) as `bpftool prog load` + `bpftool net
 * attach` processes; and the runtime's RSS idle and with 100 programs loaded.
 *
 * @module
 */
import { BpfAttachType, XdpFlags } from "../../ffi/abi.ts";
import * as bpf from "../../ffi/libbpf.ts";
import { ifNameToIndex, inNetns } from "../../ffi/libc.ts";
import { VethPair } from "../_netns.ts";
import { bytecodePath, RuntimeProcess } from "../_runtime.ts";

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

/** Resident memory of a process in MiB: all of it, its own (anonymous), file pages (the executable). */
async function rss(pid: number): Promise<{ total: number; anon: number; file: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const mib = (field: string) => Number(status.match(new RegExp(`${field}:\\s+(\\d+)`))?.[1]) / 1024;
  return { total: mib("VmRSS"), anon: mib("RssAnon"), file: mib("RssFile") };
}

/** Runs the node benchmarks with `rounds` samples per path. */
export async function benchNode(rounds = 40): Promise<BenchSection> {
  await using net = await VethPair.create();
  const object = bytecodePath("xdp_counter");
  const nsPath = `/run/netns/${net.hostNs}`;
  const ifindex = inNetns(nsPath, () => ifNameToIndex(net.hostIf));

  // (a) in-process: open, load, attach (XDP link, native mode); then release everything (not timed).
  const inProcess: number[] = [];
  for (let i = 0; i < rounds; i++) {
    let obj: bpf.BpfObject | undefined, link = -1;
    inProcess.push(
      await time(() => {
        obj = bpf.BpfObject.open(object);
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
      }),
    );
    bpf.closeFd(link);
    obj?.close();
  }

  // (b) the HTTP functions of a runtime process: load, then attach; unload after (not timed).
  const dir = await Deno.makeTempDir({ prefix: "bpfd-bench-" });
  const rt = await RuntimeProcess.start(dir);
  const http: number[] = [];
  let idleRss = { total: 0, anon: 0, file: 0 }, fullRss = idleRss;
  try {
    idleRss = await rss(rt.child.pid);
    for (let i = 0; i < rounds; i++) {
      let id = 0;
      http.push(
        await time(async () => {
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
        }),
      );
      await rt.call("unload", { programId: id });
    }
    for (let i = 0; i < 100; i++) {
      await rt.call("load", { bytecode: { path: object }, programs: [{ name: "xdp_counter", type: "xdp" }] });
    }
    fullRss = await rss(rt.child.pid);
    for (const p of (await rt.call("list", {})).body.programs) await rt.call("unload", { programId: p.id });
  } finally {
    await rt.stop();
    await run("umount", `${dir}/fs`).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }

  // (c) bpftool processes: prog load (pins), net attach; then detach and unpin (not timed).
  const processes: number[] = [];
  const pin = `/sys/fs/bpf/bpfd-bench-${Deno.pid}`;
  await run("mount", "-t", "bpf", "bpffs", "/sys/fs/bpf").catch(() => {}); // already mounted is fine
  for (let i = 0; i < rounds; i++) {
    processes.push(
      await time(async () => {
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
      }),
    );
    await run("nsenter", `--net=${nsPath}`, "bpftool", "net", "detach", "xdpdrv", "dev", net.hostIf);
    await Deno.remove(pin);
  }

  const a = percentiles(inProcess), b = percentiles(http), c = percentiles(processes);
  const ratio = (x: number, y: number) => (x / y).toFixed(2);
  const row = (name: string, p: { p50: number; p95: number }) =>
    `| ${name} | ${p.p50.toFixed(2)} | ${p.p95.toFixed(2)} | ${ratio(p.p50, a.p50)}× | ${
      ratio(p.p95, a.p95)
    }× |`;
  const markdown = [
    `Load + attach of \`xdp_counter.bpf.o\` to a veth (native XDP), ${rounds} rounds each, one run:`,
    "",
    "| path | p50 ms | p95 ms | p50 vs (a) | p95 vs (a) |",
    "| --- | ---: | ---: | ---: | ---: |",
    row("(a) in-process, ffi/libbpf.ts", a),
    row("(b) HTTP functions on the runtime (unix socket)", b),
    row("(c) `bpftool prog load` + `bpftool net attach`", c),
    "",
    `Target (b) ≤ 1.3× (a): p50 ${ratio(b.p50, a.p50)}× — ${b.p50 <= 1.3 * a.p50 ? "met" : "NOT met"}.`,
    "",
    "| runtime memory, MiB | RSS | own (RssAnon) | file pages (RssFile: mostly the Deno executable) |",
    "| --- | ---: | ---: | ---: |",
    `| idle | ${idleRss.total.toFixed(1)} | ${idleRss.anon.toFixed(1)} | ${idleRss.file.toFixed(1)} |`,
    `| 100 programs loaded | ${fullRss.total.toFixed(1)} | ${fullRss.anon.toFixed(1)} | ${
      fullRss.file.toFixed(1)
    } |`,
    "",
    `Target RSS ≤ 64 MiB with 100 programs: ${fullRss.total <= 64 ? "met" : "NOT met"} ` +
    `(RSS ${fullRss.total.toFixed(1)} MiB, of which the runtime's own memory is ${
      fullRss.anon.toFixed(1)
    } MiB).`,
  ].join("\n");
  return { title: "Node runtime: load + attach, RSS", markdown };
}
