/**
 * Trace sessions on the host kernel, through the HTTP app: a tracepoint session counts the test's own
 * syscalls and ends with bpftrace's map printout; sessions cut by their time limit or by the caller going
 * away leave no bpftrace, no program, no cgroup and no record; refused scripts and over-limit requests
 * get clear errors and leave nothing either; `list` shows a session's programs as the session's.
 */
import assert from "node:assert/strict";
import { startTestRuntime, type TestRuntime } from "../../_runtime.ts";
import { BpfdError, FUNCTIONS, invoke } from "../../../functions/mod.ts";
import { assertGone, eventually, SessionStream, startSession, uniquePath } from "./_session.ts";

const fetcher = (rt: TestRuntime) => (path: string, init: RequestInit) => rt.app.request(path, init);

/** Nothing of any session is left: no running session, no record, no cgroup. */
async function assertNoSession(rt: TestRuntime): Promise<void> {
  assert.ok(await eventually(() => rt.node.traces.sessions().length === 0), "a session is still running");
  const records: string[] = [];
  try {
    for await (const e of Deno.readDir(`${rt.dir}/traces`)) records.push(e.name);
  } catch { /* no session was ever recorded */ }
  assert.deepEqual(records, []);
  for (const controller of ["memory", "cpu"]) {
    const left = [...Deno.readDirSync(`/sys/fs/cgroup/${controller}`)].filter((e) =>
      e.name.startsWith("bpfd-trace-")
    );
    assert.deepEqual(left.map((e) => e.name), [], `cgroups left in ${controller}`);
  }
}

/** Starts a session and reads to bpftrace's "Attaching" line plus its first probe firing. */
async function started(rt: TestRuntime, input: Record<string, unknown>): Promise<SessionStream> {
  const { status, stream, body } = await startSession(fetcher(rt), input);
  assert.equal(status, 200, JSON.stringify(body));
  const first = await stream!.next();
  assert.ok(first.session, JSON.stringify(first));
  return stream!;
}

Deno.test("trace: a tracepoint session counts the test's openat calls of a unique path and prints its map at the end", async () => {
  await using rt = await startTestRuntime();
  const path = uniquePath();
  await Deno.writeTextFile(path, "x");
  try {
    const stream = await started(rt, {
      script:
        `tracepoint:syscalls:sys_enter_openat /pid == ${Deno.pid} && str(args->filename) == "${path}"/ ` +
        `{ @opens = count(); } BEGIN { printf("ready\\n"); }`,
      seconds: 3,
    });
    assert.ok(await stream.until((e) => e.line === "ready"));
    // While it runs, list shows its programs as the session's.
    const { programs } = await rt.invoke("list", {});
    const mine = programs.filter((p: { session?: { id: string } }) => p.session);
    assert.ok(mine.length >= 1, JSON.stringify(programs));
    assert.equal(mine[0].session.startedBy.user, "test");
    const programIds = rt.node.traces.sessions()[0].programIds;
    const pid = rt.node.traces.sessions()[0].pid;
    for (let i = 0; i < 7; i++) Deno.openSync(path).close();
    const end = await stream.rest();
    assert.equal(end.reason, "expired");
    assert.ok(stream.lines().includes("@opens: 7"), stream.lines().join("\n"));
    await assertGone(pid, programIds);
    await assertNoSession(rt);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("trace: a session cut by its time limit and one cut by its caller going away leave no bpftrace and no program", async () => {
  await using rt = await startTestRuntime();
  const script = 'tracepoint:syscalls:sys_enter_getppid { @calls = count(); } BEGIN { printf("ready\\n"); }';
  // Time limit.
  const timed = await started(rt, { script, seconds: 1 });
  assert.ok(await timed.until((e) => e.line === "ready"));
  const [first] = rt.node.traces.sessions();
  assert.ok(first.programIds.length >= 1);
  assert.equal((await timed.rest()).reason, "expired");
  await assertGone(first.pid, first.programIds);
  await assertNoSession(rt);
  // Disconnect.
  const cut = await started(rt, { script, seconds: 60 });
  assert.ok(await cut.until((e) => e.line === "ready"));
  const [second] = rt.node.traces.sessions();
  await cut.cancel();
  await assertGone(second.pid, second.programIds);
  await assertNoSession(rt);
});

Deno.test("trace: scripts bpftrace refuses are a 400 with its message, and leave nothing", async () => {
  await using rt = await startTestRuntime();
  const cases: Array<[string, RegExp]> = [
    ["tracepoint:syscalls:sys_enter_openat { @ = count( }", /syntax error/],
    ["tracepoint:nope:nope { @ = count(); }", /tracepoint not found/],
    // This kernel has no kprobes: bpftrace fails while attaching.
    ["kprobe:do_sys_openat2 { @ = count(); }", /kprobe/],
  ];
  for (const [script, message] of cases) {
    const { status, body } = await startSession(fetcher(rt), { script, seconds: 5 });
    assert.equal(status, 400, `${script}: ${JSON.stringify(body)}`);
    assert.equal(body.error.code, "script_refused");
    assert.equal(body.error.field, "script");
    assert.match(body.error.message, message);
    assert.doesNotMatch(body.error.message, /RLIMIT_MEMLOCK/);
    await assertNoSession(rt);
  }
});

Deno.test("trace: over-long scripts, durations over the maximum and sessions over the node's limit are refused clearly", async () => {
  await using rt = await startTestRuntime({ config: { trace: { maxSessions: 1, maxSeconds: 30 } } });
  const long = await startSession(fetcher(rt), { script: `BEGIN { printf("${"x".repeat(70_000)}"); }` });
  assert.equal(long.status, 400);
  assert.equal(long.body.error.field, "script");
  const tooLong = await startSession(fetcher(rt), { script: "BEGIN { exit(); }", seconds: 31 });
  assert.equal(tooLong.status, 400);
  assert.equal(tooLong.body.error.field, "seconds");
  const script = 'tracepoint:syscalls:sys_enter_getppid { @ = count(); } BEGIN { printf("ready\\n"); }';
  const one = await started(rt, { script, seconds: 20 });
  const second = await startSession(fetcher(rt), { script, seconds: 20 });
  assert.equal(second.status, 429);
  assert.equal(second.body.error.code, "too_many_sessions");
  await one.cancel();
  await assertNoSession(rt);
});

Deno.test("trace: output beyond the rate cap is dropped with a visible 'output truncated' line; the final maps still come", async () => {
  await using rt = await startTestRuntime({ config: { trace: { bytesPerSecond: 2000 } } });
  const stream = await started(rt, {
    script:
      'BEGIN { @final = 42; } interval:ms:1 { printf("%s\\n", "flooding the output of this session"); }',
    seconds: 2,
  });
  const end = await stream.rest();
  assert.equal(end.reason, "expired");
  assert.ok(end.truncatedBytes > 0);
  assert.ok(stream.lines().includes("[bpfd: output truncated]"));
  assert.ok(stream.lines().includes("@final: 42"), stream.lines().slice(-5).join("\n"));
  await assertNoSession(rt);
});

Deno.test("trace_stop: the starter ends a session early and still gets the maps; others get 403, unknown ids 404", async () => {
  await using rt = await startTestRuntime();
  const stream = await started(rt, {
    script:
      'BEGIN { @answer = 42; printf("ready\\n"); } tracepoint:syscalls:sys_enter_getppid { @ = count(); }',
    seconds: 60,
  });
  assert.ok(await stream.until((e) => e.line === "ready"));
  const [{ id, pid, programIds }] = rt.node.traces.sessions();
  const stop = await FUNCTIONS.get("trace_stop")!();
  await assert.rejects(
    invoke(stop, { session: id }, rt.node.ctxFor({ user: "mallory", via: "in-process" })),
    (err: BpfdError) => err.status === 403,
  );
  const unknown = await rt.call("trace_stop", { session: "nosuch" });
  assert.equal(unknown.status, 404);
  const ok = await rt.call("trace_stop", { session: id });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const end = await stream.rest();
  assert.equal(end.reason, "stopped");
  assert.ok(stream.lines().includes("@answer: 42"));
  await assertGone(pid, programIds);
  await assertNoSession(rt);
});
