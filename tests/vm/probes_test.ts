/**
 * kprobe, kretprobe, fentry and fexit programs loaded and attached through bpfd's functions fire on the
 * kernel function `do_unlinkat`: a process the test starts removes N files, and the counters of
 * bytecode/probe_counters.bpf.c (limited to that process through `target_tgid`) move by exactly N.
 * This host's kernel has no kprobes and refuses trampolines, so these run in the VM tier (tests/vm/run.sh).
 * @module
 */
import assert from "node:assert/strict";
import { capTest } from "../_caps.ts";
import { bytecodePath, kernelSnapshot, leftovers, readCounter, startTestRuntime } from "../_runtime.ts";

const FILES = 13;
const FUNCTION = "do_unlinkat";

function u32(value: number): string {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, true);
  return btoa(String.fromCharCode(...bytes));
}

/**
 * A process that waits for "go" on stdin, then removes FILES files (one unlinkat each) in itself: `exec`
 * keeps the pid the programs were told to count.
 */
async function startUnlinker() {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-unlink-" });
  const files: string[] = [];
  for (let i = 0; i < FILES; i++) {
    files.push(`${dir}/f${i}`);
    await Deno.writeTextFile(files[i], "x");
  }
  const child = new Deno.Command("sh", {
    args: ["-c", 'read line && exec rm -f "$@"', "sh", ...files],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return {
    pid: child.pid,
    async go(): Promise<void> {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode("go\n"));
      await writer.close();
      const { code, stderr } = await child.output();
      assert.equal(code, 0, new TextDecoder().decode(stderr));
      for (const f of files) await assert.rejects(Deno.stat(f), Deno.errors.NotFound);
    },
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status.catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

capTest({
  name: `kprobe and kretprobe on ${FUNCTION} count exactly one process's unlinks`,
  needs: ["kprobes"],
  proves: ["kprobe", "kretprobe"],
}, async () => {
  const before = kernelSnapshot();
  await using rt = await startTestRuntime();
  await using unlinker = await startUnlinker();
  const { programs } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("probe_counters") },
    programs: [{ name: "kprobe_counter", type: "kprobe" }, { name: "kretprobe_counter", type: "kretprobe" }],
    globalData: { target_tgid: u32(unlinker.pid) },
  });
  const [entry, exit] = programs;
  for (const p of programs) {
    const link = await rt.invoke("attach", {
      programId: p.id,
      attach: { type: p.program.type, fnName: FUNCTION },
    });
    assert.ok(link.kernelLinkId > 0, `${p.program.type} attached with a kernel link`);
  }
  const maps = entry.program.maps;
  assert.equal(readCounter(maps.kprobe_calls), 0);
  await unlinker.go();
  assert.equal(readCounter(maps.kprobe_calls), FILES, "kprobe fired once per unlink");
  assert.equal(readCounter(maps.kretprobe_returns), FILES, "kretprobe fired once per unlink");
  for (const p of [exit, entry]) await rt.invoke("unload", { programId: p.id });
  assert.deepEqual(await leftovers(before, ["kprobe_counter", "kretprobe_counter"]), []);
});

capTest({
  name: `fentry and fexit on ${FUNCTION} count exactly one process's unlinks`,
  needs: ["fentry", "fexit"],
  proves: ["fentry", "fexit"],
}, async () => {
  const before = kernelSnapshot();
  await using rt = await startTestRuntime();
  await using unlinker = await startUnlinker();
  const { programs } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("probe_counters") },
    programs: [
      { name: "fentry_counter", type: "fentry", fnName: FUNCTION },
      { name: "fexit_counter", type: "fexit", fnName: FUNCTION },
    ],
    globalData: { target_tgid: u32(unlinker.pid) },
  });
  const [entry, exit] = programs;
  for (const p of programs) {
    const link = await rt.invoke("attach", { programId: p.id, attach: { type: p.program.type } });
    assert.ok(link.kernelLinkId > 0, `${p.program.type} attached with a kernel link`);
  }
  const maps = entry.program.maps;
  await unlinker.go();
  assert.equal(readCounter(maps.fentry_calls), FILES, "fentry fired once per unlink");
  assert.equal(readCounter(maps.fexit_returns), FILES, "fexit fired once per unlink");
  for (const p of [exit, entry]) await rt.invoke("unload", { programId: p.id });
  assert.deepEqual(await leftovers(before, ["fentry_counter", "fexit_counter"]), []);
});

capTest({
  name: `a detached kprobe stops counting`,
  needs: ["kprobes"],
  proves: ["kprobe"],
}, async () => {
  await using rt = await startTestRuntime();
  const { programs: [program] } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("probe_counters") },
    programs: [{ name: "kprobe_counter", type: "kprobe" }],
    globalData: { target_tgid: u32(Deno.pid) },
  });
  const link = await rt.invoke("attach", {
    programId: program.id,
    attach: { type: "kprobe", fnName: FUNCTION },
  });
  const dir = await Deno.makeTempDir({ prefix: "bpfd-unlink-" });
  try {
    const unlinkOnce = async (name: string) => {
      await Deno.writeTextFile(`${dir}/${name}`, "x");
      await Deno.remove(`${dir}/${name}`);
    };
    const counter = program.program.maps.kprobe_calls;
    await unlinkOnce("a");
    assert.ok(readCounter(counter) >= 1, "the attached kprobe counted this process's unlink");
    // Detaching unlinks the link's pin while the kprobe is still there: count from after it.
    await rt.invoke("detach", { linkId: link.linkId });
    const counted = readCounter(counter);
    await unlinkOnce("b");
    await unlinkOnce("c");
    assert.equal(readCounter(counter), counted, "no counting after detach");
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
