/**
 * Issue 12, item 9 and the Low items on paths: files a caller names cannot freeze or bloat the runtime,
 * bad paths are a 400 naming the field, and a file the caller could not read itself answers exactly like
 * a missing one.
 */
import * as assert from "node:assert/strict";
import {
  bytecodePath,
  cleanUp,
  fixturePath,
  kernelSnapshot,
  leftovers,
  RuntimeProcess,
} from "../../_runtime.ts";
import { curlAs, ensureGroup } from "./_attack.ts";

const XDP = { programs: [{ name: "xdp_counter", type: "xdp" }] };

/** Calls `fn` while polling /healthz every 50 ms; the call's answer and the slowest health answer. */
async function whileHealthy(rt: RuntimeProcess, fn: () => Promise<{ status: number; body: unknown }>) {
  let done = false, slowest = 0;
  const poll = (async () => {
    while (!done) {
      const started = performance.now();
      await (await rt.fetch("/healthz")).body?.cancel();
      slowest = Math.max(slowest, performance.now() - started);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const started = performance.now();
  try {
    return { answer: await fn(), ms: performance.now() - started, slowest: () => slowest };
  } finally {
    done = true;
    await poll;
  }
}

/**
 * A sparse ELF file of `symtabBytes` + 8 KiB whose symbol table is all zeros and whose string table holds
 * `name`: a parser that reads it whole or scans it in one go holds the runtime for seconds.
 */
async function hugeElf(path: string, symtabBytes: number, name: string): Promise<void> {
  const header = new Uint8Array(64 + 3 * 64);
  const dv = new DataView(header.buffer);
  header.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(0x10, 3, true); // ET_DYN
  dv.setBigUint64(0x28, 64n, true); // section headers right after the ELF header
  dv.setUint16(0x3a, 64, true);
  dv.setUint16(0x3c, 3, true);
  const section = (i: number, type: number, offset: number, size: number, link: number, entsize: number) => {
    const at = 64 + i * 64;
    dv.setUint32(at + 4, type, true);
    dv.setBigUint64(at + 24, BigInt(offset), true);
    dv.setBigUint64(at + 32, BigInt(size), true);
    dv.setUint32(at + 40, link, true);
    dv.setBigUint64(at + 56, BigInt(entsize), true);
  };
  section(1, 2, 4096, symtabBytes, 2, 24); // SHT_SYMTAB
  section(2, 3, 4096 + symtabBytes, 4096, 0, 0); // SHT_STRTAB
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  await file.write(header);
  await file.truncate(4096 + symtabBytes + 4096);
  await file.seek(4096 + symtabBytes, Deno.SeekMode.Start);
  await file.write(new TextEncoder().encode(`\0${name}\0`));
}

Deno.test("files: a FIFO, a device, bad paths → quick 400 naming bytecode.path; the runtime keeps answering", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-sec-files-" });
  let rt: RuntimeProcess | undefined;
  try {
    rt = await RuntimeProcess.start(dir);
    await new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).output();
    for (
      const path of [
        `${dir}/fifo`,
        "/dev/zero",
        "/etc/hostname/below",
        `/tmp/${"n".repeat(300)}`,
        "/tmp/a\0b",
      ]
    ) {
      const { answer, ms, slowest } = await whileHealthy(
        rt,
        () => rt!.call("load", { ...XDP, bytecode: { path } }),
      );
      assert.equal(answer.status, 400, `${JSON.stringify(path)}: ${JSON.stringify(answer.body)}`);
      assert.equal((answer.body as { error: { field: string } }).error.field, "bytecode.path");
      assert.ok(ms < 1000 && slowest() < 1000, `${path}: ${ms} ms, health ${slowest()} ms`);
    }
  } finally {
    await cleanUp(rt, dir);
  }
});

Deno.test("files: an object or uprobe target a bpfd-admin member cannot read answers exactly like a missing one", async () => {
  const adminGid = await ensureGroup("bpfd-admin");
  const dir = await Deno.makeTempDir({ prefix: "bpfd-sec-unreadable-" });
  const before = kernelSnapshot();
  let rt: RuntimeProcess | undefined;
  try {
    rt = await RuntimeProcess.start(dir);
    const secret = `${dir}/secret.bpf.o`;
    await Deno.copyFile(bytecodePath("xdp_counter"), secret);
    await Deno.chmod(secret, 0o600);
    const as = { groups: [adminGid] };
    const unreadable = await curlAs(as, rt.socket, "load", { ...XDP, bytecode: { path: secret } });
    const missing = await curlAs(as, rt.socket, "load", {
      ...XDP,
      bytecode: { path: `${dir}/missing.bpf.o` },
    });
    assert.equal(unreadable.status, 404, unreadable.body);
    assert.equal(missing.status, 404);
    const shape = (body: string) => JSON.parse(body).error.message.replace(/\/\S+/, "PATH");
    assert.equal(shape(unreadable.body), shape(missing.body));
    // Root may read it, so root loads it.
    assert.equal((await rt.call("load", { ...XDP, bytecode: { path: secret } })).status, 200);

    // The same for a uprobe target: not whether it exists, nor whether it is ELF.
    const probe = await rt.call("load", {
      bytecode: { path: bytecodePath("uprobe_counter") },
      programs: [{ name: "uprobe_counter", type: "uprobe" }],
    });
    const target = `${dir}/secret-binary`;
    await Deno.copyFile(fixturePath("uprobe_target"), target);
    await Deno.chmod(target, 0o700);
    const attach = (path: string) =>
      curlAs(as, rt!.socket, "attach", {
        programId: probe.body.programs[0].id,
        attach: { type: "uprobe", target: path, fnName: "no_such_function" },
      });
    const hidden = await attach(target), absent = await attach(`${dir}/absent-binary`);
    assert.equal(hidden.status, 404, hidden.body);
    assert.equal(absent.status, 404, absent.body);
    assert.equal(shape(hidden.body), shape(absent.body));
  } finally {
    await cleanUp(rt, dir);
  }
  assert.deepEqual(await leftovers(before, ["xdp_counter", "uprobe_counter"]), []);
});

Deno.test("files: a huge ELF as uprobe target does not freeze the runtime or raise its memory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-sec-elf-" });
  const before = kernelSnapshot();
  let rt: RuntimeProcess | undefined;
  try {
    rt = await RuntimeProcess.start(dir);
    const loaded = await rt.call("load", {
      bytecode: { path: bytecodePath("uprobe_counter") },
      programs: [{ name: "uprobe_counter", type: "uprobe" }],
    });
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
    const target = `${dir}/huge.so`;
    await hugeElf(target, 96 << 20, "wanted");
    const { answer, slowest } = await whileHealthy(rt, () =>
      rt!.call("attach", {
        programId: loaded.body.programs[0].id,
        attach: { type: "uprobe", target, fnName: "wanted" },
      }));
    assert.equal(answer.status, 404, JSON.stringify(answer.body));
    assert.ok(slowest() < 1000, `health answered within ${slowest()} ms`);
    const status = await Deno.readTextFile(`/proc/${rt.child.pid}/status`);
    const peakMiB = Number(status.match(/VmHWM:\s+(\d+)/)![1]) / 1024;
    assert.ok(peakMiB < 128, `peak RSS ${peakMiB} MiB`);
  } finally {
    await cleanUp(rt, dir);
  }
  assert.deepEqual(await leftovers(before, ["uprobe_counter"]), []);
});
