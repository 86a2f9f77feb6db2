/**
 * Tracepoint and uprobe programs attached through the functions fire on a process the test starts:
 * counters move by exactly the number of calls. On this host kprobes and fentry/fexit are refused with
 * a clear error; the VM tier proves them where the kernel allows them.
 */
import assert from "node:assert/strict";
import { detectCaps } from "../../_caps.ts";
import {
  bytecodePath,
  fixturePath,
  kernelSnapshot,
  leftovers,
  readCounter,
  startTestRuntime,
  startUprobeTarget,
} from "../../_runtime.ts";

const CALLS = 17;

function u32(value: number): string {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, true);
  return btoa(String.fromCharCode(...bytes));
}

Deno.test("tracepoint program counts exactly the target process's getppid syscalls [proves tracepoint]", async () => {
  const before = kernelSnapshot();
  await using rt = await startTestRuntime();
  await using target = startUprobeTarget(CALLS);
  const { programs: [program] } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("tracepoint_counter") },
    programs: [{ name: "enter_getppid", type: "tracepoint" }],
    globalData: { target_tgid: u32(target.pid) },
  });
  const { kernelLinkId } = await rt.invoke("attach", {
    programId: program.id,
    attach: { type: "tracepoint", tracepoint: "syscalls/sys_enter_getppid" },
  });
  assert.ok(kernelLinkId > 0);
  await target.go();
  assert.equal(readCounter(program.program.maps.syscalls), CALLS);
  await rt.invoke("unload", { programId: program.id });
  assert.deepEqual(await leftovers(before, ["enter_getppid"]), []);
});

Deno.test("uprobe and uretprobe count exactly the calls of a function in a binary [proves uprobe, uretprobe]", async () => {
  const before = kernelSnapshot();
  await using rt = await startTestRuntime();
  await using target = startUprobeTarget(CALLS);
  const { programs } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("uprobe_counter") },
    programs: [{ name: "uprobe_counter", type: "uprobe" }, { name: "uretprobe_counter", type: "uretprobe" }],
  });
  const [entry, exit] = programs;
  assert.equal(exit.program.mapOwnerId, entry.id, "programs of one object share its maps");
  for (const p of programs) {
    await rt.invoke("attach", {
      programId: p.id,
      attach: {
        type: p.program.type,
        target: fixturePath("uprobe_target"),
        fnName: "bpfd_probe_target",
        pid: target.pid,
      },
    });
  }
  await target.go();
  assert.equal(readCounter(entry.program.maps.calls), CALLS);
  assert.equal(readCounter(entry.program.maps.returns), CALLS);
  for (const p of programs) await rt.invoke("unload", { programId: p.id });
  assert.deepEqual(await leftovers(before, ["uprobe_counter", "uretprobe_counter"]), []);
});

Deno.test("uprobe on a function that is not in the target is a 404 naming the function", async () => {
  await using rt = await startTestRuntime();
  const { programs: [program] } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("uprobe_counter") },
    programs: [{ name: "uprobe_counter", type: "uprobe" }],
  });
  const res = await rt.call("attach", {
    programId: program.id,
    attach: { type: "uprobe", target: fixturePath("uprobe_target"), fnName: "no_such_function" },
  });
  assert.equal(res.status, 404);
  assert.match(res.body.error.message, /no_such_function/);
  assert.equal(rt.node.state.links().length, 0);
});

const { caps } = detectCaps();

Deno.test({
  name: `kprobe attach where the kernel has no kprobes: a clear 422, nothing left (${caps.kprobes.why})`,
  ignore: caps.kprobes.available, // then tests/vm/probes_test.ts proves kprobes instead
  async fn() {
    await using rt = await startTestRuntime();
    const { programs: [program] } = await rt.invoke("load", {
      bytecode: { path: bytecodePath("uprobe_counter") },
      programs: [{ name: "uprobe_counter", type: "kprobe" }],
    });
    const res = await rt.call("attach", {
      programId: program.id,
      attach: { type: "kprobe", fnName: "do_sys_openat2" },
    });
    assert.equal(res.status, 422);
    assert.match(res.body.error.message, /no kprobe support \(CONFIG_KPROBES/);
    assert.equal(rt.node.state.links().length, 0);
  },
});

Deno.test({
  name:
    `fentry load where the kernel refuses trampolines: a 422 that says why, nothing left (${caps.fentry.why})`,
  ignore: caps.fentry.available, // then tests/vm/probes_test.ts proves fentry instead
  async fn() {
    await using rt = await startTestRuntime();
    const before = kernelSnapshot();
    const res = await rt.call("load", {
      bytecode: { path: bytecodePath("probe_counters") },
      programs: [{ name: "fentry_counter", type: "fentry", fnName: "do_unlinkat" }],
    });
    assert.equal(res.status, 422);
    assert.equal(res.body.error.errno, "EPERM");
    assert.match(res.body.error.message, /does not allow trampoline programs/);
    assert.deepEqual(await leftovers(before, ["fentry_counter"]), []);
    assert.equal(rt.node.state.programs().length, 0);
  },
});
