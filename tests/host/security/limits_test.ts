/**
 * Issue 12, items 3 and 10: idle connections, slow headers and huge bodies do not take the runtime down.
 * 20,000 idle connections from `nobody` (also past the runtime's file limit: EMFILE on accept is
 * survived), a request whose headers never end, a 400 MiB body (413, memory stays low), a chunked body.
 */
import * as assert from "node:assert/strict";
import { cleanUp, RuntimeProcess, startWithConfig } from "../../_runtime.ts";
import { freePort, rawHttp } from "./_attack.ts";

const INSECURE = "--insecure-tcp-without-auth-i-understand-this-is-root";
const FLOOD = new URL("./_flood.ts", import.meta.url).pathname;

/** Runs _flood.ts as nobody against 127.0.0.1:port; resolves once it holds its connections. */
async function flood(port: number, count: number, holdMs: number) {
  const denoDir = await Deno.makeTempDir({ prefix: "bpfd-flood-" });
  await Deno.chmod(denoDir, 0o777);
  const child = new Deno.Command("setpriv", {
    args: [
      ...[
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "env",
        `DENO_DIR=${denoDir}`,
        "DENO_NO_UPDATE_CHECK=1",
      ],
      ...[
        Deno.execPath(),
        "run",
        "--allow-net",
        "--no-config",
        FLOOD,
        "127.0.0.1",
        String(port),
        String(count),
      ],
      ...["8000", String(holdMs)],
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const first = await reader.read();
  const report = JSON.parse(first.value ?? "{}") as { opened: number; failed: number };
  return {
    report,
    async done() {
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
      await child.status;
      await Deno.remove(denoDir, { recursive: true });
    },
  };
}

const alive = (pid: number) => {
  try {
    Deno.statSync(`/proc/${pid}/status`);
    return true;
  } catch {
    return false;
  }
};
const openFds = (pid: number) => [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
const healthy = async (rt: RuntimeProcess) => {
  const res = await Promise.race([
    rt.fetch("/healthz"),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no answer in 5 s")), 5000)),
  ]);
  return res.status === 200;
};

Deno.test("limits: 20,000 idle connections from nobody; the socket still answers, at most 256 are held", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-sec-flood-" });
  const port = freePort();
  let rt: RuntimeProcess | undefined;
  try {
    rt = await RuntimeProcess.start(dir, ["--listen", `127.0.0.1:${port}`, INSECURE]);
    const attack = await flood(port, 20_000, 3000);
    try {
      assert.ok(attack.report.opened >= 256, JSON.stringify(attack.report));
      assert.ok(await healthy(rt), "the socket answers while TCP is flooded");
      assert.ok(openFds(rt.child.pid) < 600, `${openFds(rt.child.pid)} fds open`);
    } finally {
      await attack.done();
    }
    assert.ok(alive(rt.child.pid));
    const res = await rawHttp(
      { hostname: "127.0.0.1", port },
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
    );
    assert.equal(res.status, 200);
  } finally {
    await cleanUp(rt, dir);
  }
});

Deno.test("limits: EMFILE on accept (more connections allowed than the process may open) never ends the runtime", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-sec-emfile-" });
  const port = freePort();
  let rt: RuntimeProcess | undefined;
  try {
    rt = await startWithConfig(dir, { http: { maxConnections: 65536 } }, [
      "--listen",
      `127.0.0.1:${port}`,
      INSECURE,
    ]);
    const limit = await new Deno.Command("prlimit", {
      args: ["--pid", String(rt.child.pid), "--nofile=2048:2048"],
    })
      .output();
    assert.equal(limit.code, 0);
    const attack = await flood(port, 20_000, 2000);
    try {
      assert.ok(attack.report.opened >= 2000, JSON.stringify(attack.report));
      assert.ok(alive(rt.child.pid), "alive at the file limit");
    } finally {
      await attack.done();
    }
    // Once the flood is gone, both listeners answer again.
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      ok = await healthy(rt).catch(() => false);
      if (!ok) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ok, "the socket answers after the flood");
    const res = await rawHttp(
      { hostname: "127.0.0.1", port },
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
    );
    assert.equal(res.status, 200);
  } finally {
    await cleanUp(rt, dir);
  }
});

Deno.test("limits: headers that never end are cut off; a 400 MiB body is a 413 and memory stays low; chunked is 411", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-sec-body-" });
  let rt: RuntimeProcess | undefined;
  try {
    rt = await startWithConfig(dir, { http: { headerTimeoutMs: 500 } });
    const to = { transport: "unix" as const, path: rt.socket };

    // Slowloris: half a request, then silence. The runtime closes the connection after headerTimeoutMs.
    const slow = await Deno.connect(to);
    await slow.write(new TextEncoder().encode("POST /v1/functions/list HTTP/1.1\r\nHost: bpfd\r\n"));
    const started = Date.now();
    const end = await slow.read(new Uint8Array(100)).catch(() => null);
    slow.close();
    assert.equal(end, null);
    assert.ok(Date.now() - started < 3000, `closed after ${Date.now() - started} ms`);

    // 400 MiB announced and sent: answered 413 from the headers, the body is never kept.
    const big = await Deno.connect(to);
    const head = "POST /v1/functions/load HTTP/1.1\r\nHost: bpfd\r\nContent-Type: application/json\r\n" +
      `Content-Length: ${400 << 20}\r\n\r\n`;
    await big.write(new TextEncoder().encode(head));
    const answer = (async () => {
      const buf = new Uint8Array(4096);
      const n = await big.read(buf).catch(() => null);
      return n ? new TextDecoder().decode(buf.subarray(0, n)) : "";
    })();
    const chunk = new Uint8Array(1 << 20).fill(0x20);
    let sent = 0;
    try {
      for (; sent < 400; sent++) await big.write(chunk);
    } catch { /* the runtime closed the connection */ }
    assert.match(await answer, /^HTTP\/1\.1 413 /);
    assert.ok(sent < 400, "the runtime stopped reading long before 400 MiB");
    big.close();
    const status = await Deno.readTextFile(`/proc/${rt.child.pid}/status`);
    const peakMiB = Number(status.match(/VmHWM:\s+(\d+)/)![1]) / 1024;
    assert.ok(peakMiB < 128, `peak RSS ${peakMiB} MiB`);

    const chunked = await rawHttp(
      to,
      "POST /v1/functions/list HTTP/1.1\r\nHost: bpfd\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    );
    assert.equal(chunked.status, 411);
    assert.ok(await healthy(rt));
  } finally {
    await cleanUp(rt, dir);
  }
});
