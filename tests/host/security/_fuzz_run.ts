/**
 * Runs the bad-input generator (./_fuzz.ts) against a runtime — in-process through the socket's app, or a
 * runtime process over its socket: counts answers by status, collects what should never happen (a 5xx,
 * an exception, a failed health check), then unloads everything and lists any pin left in the bpffs.
 *
 * @module
 */
import { socketApp } from "../../../runtime/listeners.ts";
import type { RuntimeProcess, TestRuntime } from "../../_runtime.ts";
import type { VethPair } from "../../_netns.ts";
import { fuzzRequests } from "./_fuzz.ts";

/** What a run needs from a runtime. */
export interface FuzzTarget {
  dir: string;
  bpffs: string;
  send(fn: string, contentType: string, body: string): Promise<{ status: number; text: string }>;
  health(): Promise<number>;
  programIds(): Promise<number[]>;
  unload(id: number): Promise<void>;
}

/** What a run saw. */
export interface FuzzResult {
  statuses: Record<number, number>;
  failures: string[];
  /** Per-request latency, ms. */
  latencies: number[];
  /** Pins in the bpffs after everything was unloaded that were not there before. */
  leftPins: string[];
}

const ROOT_PEER = { peer: { uid: 0, gid: 0, pid: Deno.pid, groups: [] } };

/** An in-process runtime, called through the socket's app as root. */
export function inProcessTarget(rt: TestRuntime): FuzzTarget {
  const app = socketApp(rt.node, undefined);
  return {
    dir: rt.dir,
    bpffs: rt.node.config.bpffs,
    async send(fn, contentType, body) {
      const res = await app.request(
        `/v1/functions/${encodeURIComponent(fn)}`,
        { method: "POST", headers: { "content-type": contentType }, body },
        ROOT_PEER,
      );
      return { status: res.status, text: await res.text() };
    },
    async health() {
      return (await app.request("/healthz", {}, ROOT_PEER)).status;
    },
    programIds: () => Promise.resolve(rt.node.state.programs().map((p) => p.id)),
    async unload(id) {
      await rt.invoke("unload", { programId: id });
    },
  };
}

/** A runtime process, over its unix socket. */
export function processTarget(rt: RuntimeProcess): FuzzTarget {
  return {
    dir: rt.dir,
    bpffs: `${rt.dir}/fs`,
    async send(fn, contentType, body) {
      const res = await rt.fetch(`/v1/functions/${encodeURIComponent(fn)}`, {
        method: "POST",
        headers: { "content-type": contentType || "application/octet-stream" },
        body,
      });
      return { status: res.status, text: await res.text() };
    },
    async health() {
      return (await rt.fetch("/healthz")).status;
    },
    async programIds() {
      return (await rt.call("list", {})).body.programs.map((p: { id: number }) => p.id);
    },
    async unload(id) {
      await rt.call("unload", { programId: id });
    },
  };
}

/** Sends `count` requests from `seed`; the FIFO and missing paths it aims at live in the runtime's dir. */
export async function fuzzRun(
  target: FuzzTarget,
  net: VethPair,
  opts: { seed: number; count: number; objectPath: string },
): Promise<FuzzResult> {
  const fifo = `${target.dir}/fifo`;
  await new Deno.Command("mkfifo", { args: [fifo] }).output();
  const hostInterfaces = new Set([...Deno.readDirSync("/sys/class/net")].map((e) => e.name));
  const targets = {
    objectPath: opts.objectPath,
    netns: net.hostNs,
    iface: net.hostIf,
    badPaths: [fifo, target.dir, `${target.dir}/missing.o`, "/dev/zero", "/etc/hostname", "/proc/self/mem"],
  };
  const pinsBefore = new Set(pinsUnder(target.bpffs)); // bpffs's own progs.debug, maps.debug
  let ids = await target.programIds();
  const result: FuzzResult = { statuses: {}, failures: [], latencies: [], leftPins: [] };
  let i = 0;
  for (const req of fuzzRequests(opts.seed, opts.count, targets, () => ids, (s) => hostInterfaces.has(s))) {
    i++;
    const started = performance.now();
    try {
      const { status, text } = await target.send(req.fn, req.contentType, req.body);
      result.statuses[status] = (result.statuses[status] ?? 0) + 1;
      const noImageStore = status === 503 && text.includes('"unavailable"');
      if (status >= 500 && !noImageStore) {
        result.failures.push(`#${i} ${req.fn} ${req.body.slice(0, 300)} → ${status} ${text.slice(0, 300)}`);
      }
      if (status === 200 && (req.fn === "load" || req.fn === "unload")) ids = await target.programIds();
    } catch (err) {
      result.failures.push(`#${i} ${req.fn} ${req.body.slice(0, 300)} threw ${(err as Error).stack}`);
    }
    result.latencies.push(performance.now() - started);
    if (i % 500 === 0 && (await target.health()) !== 200) result.failures.push(`#${i}: /healthz failed`);
  }
  for (const id of (await target.programIds()).reverse()) await target.unload(id);
  result.leftPins = pinsUnder(target.bpffs).filter((p) => !pinsBefore.has(p));
  return result;
}

/** Files (pins) under `dir`, recursively. */
function pinsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.isDirectory) out.push(...pinsUnder(`${dir}/${e.name}`));
    else out.push(`${dir}/${e.name}`);
  }
  return out;
}
