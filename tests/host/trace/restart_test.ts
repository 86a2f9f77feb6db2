/**
 * Trace sessions and a runtime killed with -9: the session's bpftrace dies with it (its parent-death
 * signal) and its programs go; at the next start, recovery kills any process a session record still
 * names (same pid and start time), removes the record and reports it.
 */
import assert from "node:assert/strict";
import { RuntimeProcess } from "../../_runtime.ts";
import { processStartTime } from "../../../kernel/bpftrace.ts";
import { assertGone, eventually, SessionStream } from "./_session.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-trace-restart-" });
  try {
    await fn(dir);
  } finally {
    await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A 120 s session counting getppid calls over the runtime's socket; it prints "ready" once running. */
function startSession(client: Deno.HttpClient, signal?: AbortSignal): Promise<Response> {
  return fetch("http://bpfd/v1/functions/trace", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      script: 'tracepoint:syscalls:sys_enter_getppid { @ = count(); } BEGIN { printf("ready\\n"); }',
      seconds: 120,
    }),
    client,
    signal,
  });
}

async function records(dir: string): Promise<string[]> {
  const found: string[] = [];
  try {
    for await (const e of Deno.readDir(`${dir}/traces`)) found.push(e.name);
  } catch { /* none */ }
  return found;
}

Deno.test("trace: kill -9 of the runtime mid-session ends the session; the restart finds and clears its record", async () => {
  await withDir(async (dir) => {
    let rt = await RuntimeProcess.start(dir);
    const client = Deno.createHttpClient({ proxy: { transport: "unix", path: rt.socket } });
    try {
      const res = await startSession(client);
      assert.equal(res.status, 200);
      const stream = new SessionStream(res.body!);
      const { session } = await stream.next();
      assert.ok(await stream.until((e) => e.line === "ready"));
      const listed = (await rt.call("list", {})).body.programs.filter((p: { session?: unknown }) =>
        p.session
      );
      assert.ok(listed.length >= 1);
      assert.deepEqual(await records(dir), [`${session.id}.json`]);

      await rt.stop("SIGKILL");
      await stream.cancel().catch(() => {/* the connection died with the runtime */});
      await assertGone(session.pid, listed.map((p: { id: number }) => p.id));

      rt = await RuntimeProcess.start(dir);
      assert.deepEqual(await records(dir), []);
      const ready = await (await rt.fetch("/readyz")).json();
      assert.ok(
        ready.findings.some((f: { what: string; action: string }) =>
          f.what === "trace session" && f.action.includes(session.id) && f.action.includes("no program left")
        ),
        JSON.stringify(ready.findings),
      );
    } finally {
      client.close();
      await rt.stop("SIGKILL");
    }
  });
});

Deno.test("trace: a caller that goes away over the socket ends its session, also when bpftrace prints nothing", async () => {
  await withDir(async (dir) => {
    const rt = await RuntimeProcess.start(dir);
    const client = Deno.createHttpClient({ proxy: { transport: "unix", path: rt.socket } });
    try {
      const abort = new AbortController();
      const res = await startSession(client, abort.signal);
      const stream = new SessionStream(res.body!);
      const { session } = await stream.next();
      assert.ok(await stream.until((e) => e.line === "ready"));
      const programs = (await rt.call("list", {})).body.programs.filter((p: { session?: unknown }) =>
        p.session
      );
      abort.abort();
      await assertGone(session.pid, programs.map((p: { id: number }) => p.id));
      assert.ok(await eventually(() => Deno.readDirSync(`${dir}/traces`).toArray().length === 0));
    } finally {
      client.close();
      await rt.stop("SIGKILL");
    }
  });
});

Deno.test("trace: recovery kills a process a session record still names, and only when its start time matches", async () => {
  await withDir(async (dir) => {
    const survivor = new Deno.Command("sleep", { args: ["60"] }).spawn();
    const leftover = new Deno.Command("sleep", { args: ["60"] }).spawn();
    let rt: RuntimeProcess | undefined;
    try {
      await Deno.mkdir(`${dir}/traces`, { recursive: true });
      const record = (id: string, pid: number, startTime: string) =>
        Deno.writeTextFile(
          `${dir}/traces/${id}.json`,
          JSON.stringify({
            id,
            startedBy: { user: "test", via: "in-process" },
            startedAt: new Date().toISOString(),
            expiresAt: new Date().toISOString(),
            pid,
            startTime,
            script: "BEGIN {}",
            cgroups: [],
            programIds: [],
          }),
        );
      await record("left", leftover.pid, processStartTime(leftover.pid)!);
      // Same pid, another start time: a different process that reused the pid; it must survive.
      await record("reused", survivor.pid, "1");
      rt = await RuntimeProcess.start(dir);
      assert.equal((await leftover.status).signal, "SIGKILL");
      assert.ok(await eventually(() => processStartTime(survivor.pid) !== undefined, 200));
      assert.deepEqual(await records(dir), []);
    } finally {
      await rt?.stop("SIGKILL");
      for (const p of [survivor, leftover]) {
        try {
          p.kill("SIGKILL");
        } catch { /* ended */ }
        await p.status;
      }
    }
  });
});
