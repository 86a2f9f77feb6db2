// The controller's work queue and settings, without a cluster.
import assert from "node:assert/strict";
import { WorkQueue } from "../../../controller/queue.ts";
import { parseSettings } from "../../../controller/settings.ts";
import { jsonEqual, programName, setCondition } from "../../../controller/reconciler.ts";

Deno.test("work queue: a key is queued once, never processed twice at a time, re-run when added meanwhile", async () => {
  const q = new WorkQueue({ baseDelayMs: 5, maxDelayMs: 40 });
  const seen: string[] = [];
  let running = 0, maxRunning = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const workers = q.run(4, async (key) => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    seen.push(key);
    if (key === "a" && seen.filter((k) => k === "a").length === 1) await gate;
    running--;
  }, () => {});
  q.add("a");
  q.add("a");
  q.add("b");
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(seen, ["a", "b"], "a queued twice before a worker took it runs once");
  q.add("a"); // while "a" runs: runs again afterwards, not beside it
  q.add("a");
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(seen, ["a", "b"]);
  release();
  await q.whenIdle();
  assert.deepEqual(seen, ["a", "b", "a"]);
  assert.ok(maxRunning <= 2);
  q.stop();
  await workers;
});

Deno.test("work queue: failures come back with exponential backoff, capped; success forgets", async () => {
  const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 40 });
  const delays: number[] = [];
  let fails = 4;
  const times: number[] = [];
  const workers = q.run(1, (key) => {
    times.push(performance.now());
    if (key === "x" && fails-- > 0) return Promise.reject(new Error("nope"));
    return Promise.resolve();
  }, (_k, _e, retryIn) => delays.push(retryIn));
  q.add("x");
  await new Promise((r) => setTimeout(r, 30));
  await q.whenIdle();
  assert.deepEqual(delays, [10, 20, 40, 40]);
  assert.equal(times.length, 5);
  assert.ok(times[4] - times[0] >= 100, `retries too fast: ${times[4] - times[0]} ms`);
  assert.equal(q.failures("x"), 0);
  q.stop();
  await workers;
});

Deno.test("settings: defaults, values, and bad values reported and replaced by defaults", () => {
  assert.deepEqual(parseSettings(undefined).settings, {
    "bpfd.node.port": 50052,
    "bpfd.node.timeout.seconds": 30,
    "bpfd.resync.seconds": 30,
    "bpfd.log.level": "info",
  });
  const { settings, problems } = parseSettings({
    "bpfd.node.port": "6000",
    "bpfd.resync.seconds": "-1",
    "bpfd.log.level": "debug",
    "bpfd.other": "x",
  });
  assert.equal(settings["bpfd.node.port"], 6000);
  assert.equal(settings["bpfd.resync.seconds"], 30);
  assert.equal(settings["bpfd.log.level"], "debug");
  assert.equal(problems.length, 2);
  assert.match(problems.join("; "), /bpfd\.resync\.seconds: .*default used/);
  assert.match(problems.join("; "), /bpfd\.other: unknown key/);
});

Deno.test("conditions keep lastTransitionTime unless the status changes; names stay valid", () => {
  const a = setCondition(undefined, {
    type: "Loaded",
    status: "False",
    reason: "bpfdNotLoaded",
    message: "x",
  });
  const old = a[0].lastTransitionTime;
  assert.match(old, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const b = setCondition([{ ...a[0], lastTransitionTime: "2000-01-01T00:00:00Z" }], {
    type: "Loaded",
    status: "False",
    reason: "bpfdNotLoaded",
    message: "y",
  });
  assert.equal(b[0].lastTransitionTime, "2000-01-01T00:00:00Z");
  assert.equal(b[0].message, "y");
  const c = setCondition(b, { type: "Loaded", status: "True", reason: "bpfdLoaded", message: "ok" });
  assert.notEqual(c[0].lastTransitionTime, "2000-01-01T00:00:00Z");
  assert.ok(jsonEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1, d: undefined }));
  assert.ok(!jsonEqual({ a: 1 }, { a: 2 }));
  assert.equal(programName("cfg", "node-1"), "cfg-node-1");
  const long = programName("c".repeat(200), "n".repeat(200));
  assert.ok(long.length <= 253, String(long.length));
  assert.notEqual(long, programName("c".repeat(200), "n".repeat(199) + "m"));
});
