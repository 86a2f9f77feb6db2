/**
 * Chains on one hook: what a dispatcher costs per packet, and what one chain change takes.
 *
 * - Per packet (BPF_PROG_TEST_RUN, XDP, 64-byte packet): the counter program run directly vs 1, 2, 5
 *   and 10 copies of it in bpfd's XDP dispatcher. Where the kernel refuses extension programs (this
 *   host), the slots keep their stubs, which measures the dispatcher's own cost per slot.
 * - One chain change: a dispatcher rebuilt and swapped in over netlink (kernel side only), and bpfd's
 *   `modify` reordering a three-program chain end to end (state written to disk included): XDP where the
 *   kernel allows extensions, TCX where it has TCX.
 *
 * Standalone: `deno run -A tests/bench/chain.ts [repeat]`; `benchChain()` for `deno task bench`.
 * @module
 */
import { BpfProgType, XdpFlags } from "../../ffi/abi.ts";
import * as bpf from "../../ffi/libbpf.ts";
import { freplaceAttach } from "../../ffi/bpf.ts";
import { xdpAttach } from "../../ffi/netlink.ts";
import { BpfObject } from "../../ffi/object.ts";
import { ifNameToIndex, inNetns } from "../../ffi/libc.ts";
import { type HeldProgram, loadDispatcher, slotTargets } from "../../kernel/chains/dispatcher.ts";
import { proceedOnMask } from "../../kernel/chains/order.ts";
import { VethPair } from "../_netns.ts";
import { bytecodePath, startTestRuntime } from "../_runtime.ts";
import { loadChain } from "../host/hooks/_chain.ts";
import type { BenchSection } from "./node.ts";

const PACKET = new Uint8Array(64);
const SIZES = [1, 2, 5, 10];

/** One measured figure. */
export interface ChainFigure {
  name: string;
  value: number;
  unit: "ns/packet" | "ms";
  note?: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Loads the XDP counter as a plain XDP program, or as an extension of `slot` in `dispatcherFd`. */
function loadCounter(dispatcherFd?: number, slot?: string): HeldProgram {
  const obj = BpfObject.open(bytecodePath("xdp_counter"));
  try {
    if (dispatcherFd !== undefined) {
      obj.setProgramType("xdp_counter", BpfProgType.EXT, 0);
      obj.setAttachProgram("xdp_counter", dispatcherFd, slot!);
    }
    obj.load();
    const id = bpf.programInfo(obj.programFd("xdp_counter")).id;
    return { fd: bpf.programFdById(id), id };
  } finally {
    obj.close();
  }
}

/** A dispatcher of `n` slots, each holding a copy of the counter (or its stub, without extensions). */
function dispatcherOf(n: number, extensions: boolean): { fd: number; held: number[] } {
  const passOn = proceedOnMask("xdp", ["pass", "dispatcher_return"]);
  const d = loadDispatcher(
    "xdp",
    Array.from({ length: n }, () => ({ chainCallActions: passOn, runPrio: 50, programFlags: 0 })),
  );
  const held = [d.fd];
  if (extensions) {
    const targets = slotTargets(d.fd, n);
    for (let i = 0; i < n; i++) {
      const ext = loadCounter(d.fd, `prog${i}`);
      held.push(ext.fd, freplaceAttach(`slot ${i}`, ext.fd, d.fd, targets[i]));
    }
  }
  return { fd: d.fd, held };
}

function nsPerPacket(fd: number, repeat: number): number {
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const { retval, durationNs } = bpf.testRun(fd, PACKET, repeat);
    if (retval !== 2) throw new Error(`expected XDP_PASS from the chain, got ${retval}`);
    runs.push(durationNs);
  }
  return median(runs);
}

/** Whether this kernel loads extension (freplace) programs. */
function extensionsAllowed(): boolean {
  const d = loadDispatcher("xdp", [{ chainCallActions: 0, runPrio: 50, programFlags: 0 }]);
  try {
    bpf.closeFd(loadCounter(d.fd, "prog0").fd);
    return true;
  } catch {
    return false;
  } finally {
    bpf.closeFd(d.fd);
  }
}

/** Per-packet figures: direct, then each chain size. */
export function benchPerPacket(repeat = 200_000): ChainFigure[] {
  const extensions = extensionsAllowed();
  const direct = loadCounter();
  const figures: ChainFigure[] = [];
  try {
    figures.push({
      name: "xdp_counter attached directly",
      value: nsPerPacket(direct.fd, repeat),
      unit: "ns/packet",
    });
  } finally {
    bpf.closeFd(direct.fd);
  }
  if (extensions) {
    // What bpfd runs for a single program: the copy replaces the dispatcher's main function itself.
    const d = loadDispatcher("xdp", [{ chainCallActions: 0, runPrio: 50, programFlags: 0 }]);
    const ext = loadCounter(d.fd, "xdp_dispatcher");
    const link = freplaceAttach("main", ext.fd, d.fd, bpf.btfFuncId(d.fd, "xdp_dispatcher"));
    try {
      figures.push({
        name: "1 × xdp_counter replacing the dispatcher's main function (bpfd's single program)",
        value: nsPerPacket(d.fd, repeat),
        unit: "ns/packet",
      });
    } finally {
      [link, ext.fd, d.fd].forEach(bpf.closeFd);
    }
  }
  for (const n of SIZES) {
    const { fd, held } = dispatcherOf(n, extensions);
    try {
      figures.push({
        name: extensions
          ? `${n} × xdp_counter in the dispatcher`
          : `dispatcher with ${n} slot${n > 1 ? "s" : ""} (stubs: extensions refused here)`,
        value: nsPerPacket(fd, repeat),
        unit: "ns/packet",
      });
    } finally {
      held.forEach(bpf.closeFd);
    }
  }
  return figures;
}

/** Kernel-side chain change: a new 3-slot dispatcher built and swapped in on a veth, median of `changes`. */
async function benchSwap(changes: number, extensions: boolean): Promise<ChainFigure> {
  await using net = await VethPair.create();
  const ns = `/run/netns/${net.hostNs}`;
  const ifindex = inNetns(ns, () => ifNameToIndex(net.hostIf));
  let current = dispatcherOf(3, extensions);
  inNetns(
    ns,
    () => xdpAttach("attach", ifindex, current.fd, XdpFlags.DRV_MODE | XdpFlags.UPDATE_IF_NOEXIST),
  );
  const samples: number[] = [];
  try {
    for (let i = 0; i < changes; i++) {
      const t = performance.now();
      const next = dispatcherOf(3, extensions);
      inNetns(
        ns,
        () => xdpAttach("swap", ifindex, next.fd, XdpFlags.DRV_MODE | XdpFlags.REPLACE, current.fd),
      );
      samples.push(performance.now() - t);
      current.held.forEach(bpf.closeFd);
      current = next;
    }
  } finally {
    inNetns(ns, () => xdpAttach("detach", ifindex, -1, XdpFlags.DRV_MODE | XdpFlags.REPLACE, current.fd));
    current.held.forEach(bpf.closeFd);
  }
  return {
    name: `XDP: new 3-slot dispatcher built and swapped in (netlink replace)${
      extensions ? ", 3 new extensions loaded" : ", stub slots"
    }`,
    value: median(samples),
    unit: "ms",
  };
}

/** End to end: bpfd's `modify` moving one of three programs, median of `changes`. */
async function benchModify(type: "xdp" | "tcx", changes: number): Promise<ChainFigure> {
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const programs = await loadChain(rt, type, [{ tag: 1 }, { tag: 2 }, { tag: 3 }]);
  const links: number[] = [];
  for (const [i, p] of programs.entries()) {
    const attach = type === "xdp"
      ? { type, iface: net.hostIf, netns: net.hostNs, priority: 10 * (i + 1) }
      : { type, iface: net.hostIf, netns: net.hostNs, direction: "ingress", priority: 10 * (i + 1) };
    links.push((await rt.invoke("attach", { programId: p.id, attach })).linkId);
  }
  const samples: number[] = [];
  for (let i = 0; i < changes; i++) {
    const t = performance.now();
    await rt.invoke("modify", { linkId: links[0], priority: i % 2 ? 5 : 25 });
    samples.push(performance.now() - t);
  }
  return {
    name: `bpfd modify: reorder one of 3 ${type === "xdp" ? "XDP (dispatcher)" : "TCX"} programs, end to end`,
    value: median(samples),
    unit: "ms",
    note: "includes the state file write (fsync)",
  };
}

/** Every chain figure, and the markdown table for BENCHMARKS.md. */
export async function benchChain(opts: { repeat?: number; changes?: number } = {}): Promise<
  BenchSection & { figures: ChainFigure[] }
> {
  const figures = benchPerPacket(opts.repeat);
  const extensions = extensionsAllowed();
  const changes = opts.changes ?? 50;
  figures.push(await benchSwap(changes, extensions));
  if (extensions) figures.push(await benchModify("xdp", changes));
  try {
    figures.push(await benchModify("tcx", changes));
  } catch (err) {
    console.error(`bench: TCX not measured: ${err instanceof Error ? err.message : err}`);
  }
  const direct = figures[0].value;
  const rows = figures.map((f) =>
    `| ${f.name}${f.note ? ` (${f.note})` : ""} | ${f.value.toFixed(f.unit === "ms" ? 2 : 1)} ${f.unit} | ${
      f.unit === "ns/packet" ? `${(f.value / direct).toFixed(2)}×` : ""
    } |`
  );
  return {
    title: `Chains on one hook (linux ${Deno.osRelease()}${extensions ? "" : ", extensions refused"})`,
    markdown: ["| what | median | vs direct |", "| --- | ---: | ---: |", ...rows].join("\n"),
    figures,
  };
}

if (import.meta.main) {
  const repeat = Number(Deno.args[0] ?? 200_000);
  const { title, markdown } = await benchChain({ repeat });
  console.log(`## ${title}\n\n${markdown}\n`);
}
