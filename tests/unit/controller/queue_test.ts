/** The controller's work queue, without a cluster. */
import assert from "node:assert/strict";
import { WorkQueue } from "../../../controller/queue.ts";

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
