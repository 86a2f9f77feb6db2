/**
 * libbpf-tools style objects through the normal load path: the syscall latency histogram as raw
 * tracepoints and as tp_btf (its .rodata filters `targ_pid` and `targ_syscall` set with globalData) counts
 * exactly the target process's getppid calls; the CPU profiler as perf_event programs on a CPU-clock event
 * per CPU counts samples of a busy process. Nothing is left after unload.
 */
import assert from "node:assert/strict";
import {
  bytecodePath,
  kernelSnapshot,
  leftovers,
  readCounter,
  startTestRuntime,
  startUprobeTarget,
} from "../../_runtime.ts";
import * as bpf from "../../../ffi/libbpf.ts";

const CALLS = 17;
const SYS_GETPPID = 110;

function le(bytes: number, value: number): string {
  const out = new Uint8Array(bytes);
  new DataView(out.buffer).setUint32(0, value >>> 0, true);
  return btoa(String.fromCharCode(...out));
}

/** The sum of an array map's u64 values (the histogram's buckets). */
function histogramTotal(pin: string, slots: number): number {
  return bpf.withFd(bpf.objGet(pin), (fd) => {
    let total = 0;
    for (let i = 0; i < slots; i++) {
      const key = new Uint8Array(4);
      new DataView(key.buffer).setUint32(0, i, true);
      const v = bpf.mapLookup(fd, key, 8);
      if (v) total += Number(new DataView(v.buffer).getBigUint64(0, true));
    }
    return total;
  });
}

for (
  const [type, names] of [
    ["raw_tracepoint", ["sys_enter", "sys_exit"]],
    ["tp_btf", ["sys_enter_btf", "sys_exit_btf"]],
  ] as const
) {
  Deno.test(`${type}: the syscall latency histogram counts exactly the target's getppid calls [proves ${type}]`, async () => {
    const before = kernelSnapshot();
    await using rt = await startTestRuntime();
    await using target = startUprobeTarget(CALLS);
    const { programs } = await rt.invoke("load", {
      bytecode: { path: bytecodePath("syscall_latency") },
      programs: names.map((name) => ({ name, type })),
      globalData: { targ_pid: le(4, target.pid), targ_syscall: le(4, SYS_GETPPID) },
    });
    for (const [i, p] of programs.entries()) {
      const attach = type === "raw_tracepoint"
        ? { type, tracepoint: i === 0 ? "sys_enter" : "sys_exit" }
        : { type };
      const { kernelLinkId } = await rt.invoke("attach", { programId: p.id, attach });
      assert.ok(kernelLinkId > 0);
    }
    const listed = (await rt.invoke("list", { type })).programs;
    assert.equal(listed.length, 2);
    await target.go();
    assert.equal(histogramTotal(programs[0].program.maps.latency_us, 27), CALLS);
    for (const p of programs.reverse()) await rt.invoke("unload", { programId: p.id });
    assert.deepEqual(await leftovers(before, [...names]), []);
  });
}

Deno.test("raw_tracepoint on a tracepoint the kernel lacks is a 404 naming it; nothing is left", async () => {
  await using rt = await startTestRuntime();
  const { programs: [p] } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("syscall_latency") },
    programs: [{ name: "sys_enter", type: "raw_tracepoint" }],
  });
  const res = await rt.call("attach", {
    programId: p.id,
    attach: { type: "raw_tracepoint", tracepoint: "no_such_tracepoint" },
  });
  assert.equal(res.status, 404, JSON.stringify(res.body));
  assert.match(res.body.error.message, /no_such_tracepoint/);
  assert.equal(rt.node.state.links().length, 0);
});

Deno.test("perf_event: a CPU-clock profiler on every CPU counts samples of a busy process [proves perf_event]", async () => {
  const before = kernelSnapshot();
  await using rt = await startTestRuntime();
  const busy = new Deno.Command("/bin/sh", { args: ["-c", "while :; do :; done"] }).spawn();
  try {
    const { programs: [p] } = await rt.invoke("load", {
      bytecode: { path: bytecodePath("cpu_profile") },
      programs: [{ name: "do_sample", type: "perf_event" }],
      globalData: { targ_pid: le(4, busy.pid) },
    });
    for (let cpu = 0; cpu < navigator.hardwareConcurrency; cpu++) {
      await rt.invoke("attach", {
        programId: p.id,
        attach: { type: "perf_event", event: "cpu-clock", frequency: 499, cpu },
      });
    }
    assert.equal(rt.node.state.links(p.id).length, navigator.hardwareConcurrency);
    await new Promise((r) => setTimeout(r, 1000));
    const samples = readCounter(p.program.maps.total);
    // A busy loop for a second at 499 Hz: about 499 samples, fewer on a machine shared with other work.
    assert.ok(samples > 50 && samples < 1500, `${samples} samples`);
    await rt.invoke("unload", { programId: p.id });
    assert.deepEqual(await leftovers(before, ["do_sample"]), []);
  } finally {
    busy.kill("SIGKILL");
    await busy.status;
  }
});
