/**
 * The libbpf-tools example as a bpfman-format image: `bpfd image build` packages
 * bytecode/syscall_latency.bpf.o with its programs and maps in the labels, `bpfd image push` puts it in a
 * real registry (Debian's docker-registry on loopback), and `load` with `bytecode.image` pulls it and
 * loads its raw tracepoints with a `targ_pid` filter; the histogram counts the target's calls.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { invoke } from "../../../functions/_define.ts";
import { FUNCTIONS } from "../../../functions/mod.ts";
import { runImageCli } from "../../../cli/image.ts";
import { startRegistry } from "../../_registry.ts";
import { bytecodePath, fixturePath, kernelSnapshot, leftovers, startTestRuntime } from "../../_runtime.ts";
import { storeFor } from "../image/_helpers.ts";
import { readMapU64 } from "../../../mod.ts";

const CALLS = 17;

Deno.test("syscall_latency as a bpfman image: built, pushed, pulled by load, counts the target's getppid calls", async () => {
  const before = kernelSnapshot();
  const reg = await startRegistry();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-trace-image-" });
  const target = new Deno.Command(fixturePath("uprobe_target"), {
    args: [String(CALLS)],
    stdin: "piped",
    stdout: "null",
  }).spawn();
  try {
    await using rt = await startTestRuntime();
    const url = `${reg.host}/bytecode/syscall_latency:v1`;
    const quiet = console.log;
    console.log = () => {};
    try {
      const built = await runImageCli([
        "build",
        "-o",
        `${dir}/layout:v1`,
        "--program",
        "sys_enter=raw_tracepoint",
        "--program",
        "sys_exit=raw_tracepoint",
        "--program",
        "sys_enter_btf=tp_btf",
        "--program",
        "sys_exit_btf=tp_btf",
        "--map",
        "latency_us=array",
        "--map",
        "starts=hash",
        bytecodePath("syscall_latency"),
      ]);
      assert.equal(built, 0);
      assert.equal(await runImageCli(["push", `${dir}/layout:v1`, url, "--insecure", reg.host]), 0);
    } finally {
      console.log = quiet;
    }
    const images = storeFor(reg, join(dir, "cache"), { signature: { allowUnsigned: true } });
    const ctx = { ...rt.node.ctxFor({ user: "test", via: "in-process" }), images };
    // deno-lint-ignore no-explicit-any
    const call = async (name: string, input: unknown): Promise<any> =>
      invoke((await FUNCTIONS.get(name)!())!, input, ctx);
    const pid = new Uint8Array(4);
    new DataView(pid.buffer).setUint32(0, target.pid, true);
    const { programs } = await call("load", {
      bytecode: { image: { url, pullPolicy: "Always" } },
      programs: [{ name: "sys_enter", type: "raw_tracepoint" }, { name: "sys_exit", type: "raw_tracepoint" }],
      globalData: { targ_pid: btoa(String.fromCharCode(...pid)) },
    });
    assert.ok(programs[0].program.bytecode.image.digest.startsWith("sha256:"));
    for (const [i, p] of programs.entries()) {
      await call("attach", {
        programId: p.id,
        attach: { type: "raw_tracepoint", tracepoint: i === 0 ? "sys_enter" : "sys_exit" },
      });
    }
    const writer = target.stdin.getWriter();
    await writer.write(new TextEncoder().encode("go\n"));
    await writer.close();
    assert.equal((await target.status).code, 0);
    const pin = programs[0].program.maps.latency_us;
    let total = 0n;
    for (let slot = 0; slot < 27; slot++) total += readMapU64(pin, slot);
    // Every syscall of the target from "go" on (read's return, getppid x CALLS, write, exit...).
    assert.ok(total >= BigInt(CALLS), `${total} calls counted`);
    for (const p of [...programs].reverse()) await call("unload", { programId: p.id });
    assert.deepEqual(await leftovers(before, ["sys_enter", "sys_exit"]), []);
  } finally {
    try {
      target.kill("SIGKILL");
    } catch { /* exited */ }
    await target.status;
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
