import * as assert from "node:assert/strict";
import { after, Deadline, TICK_MS } from "../../../lib/timers.ts";
import { blank } from "../_source.ts";

const sleep = (ms: number) => new Promise<void>((r) => after(ms, r));

Deno.test("Deadline: fires once after its time, within a tick; set again moves it; clear stops it", async () => {
  const fired: string[] = [];
  const a = new Deadline(() => fired.push("a")), b = new Deadline(() => fired.push("b"));
  const c = new Deadline(() => fired.push("c"));
  const started = Date.now();
  a.set(150);
  b.set(150);
  c.set(150);
  await sleep(50);
  b.set(400); // moved later
  c.clear();
  await sleep(150 + 2 * TICK_MS);
  assert.deepEqual(fired, ["a"]);
  await sleep(400);
  assert.deepEqual(fired, ["a", "b"]);
  assert.ok(Date.now() - started >= 450, "b fired before its time");
  await sleep(3 * TICK_MS); // the ticker stops once nothing is pending
  assert.deepEqual(fired, ["a", "b"]);
});

Deno.test("after: calls back after the delay without the global setTimeout", async () => {
  const started = performance.now();
  await sleep(30);
  assert.ok(performance.now() - started >= 29);
});

Deno.test("the runtime's listeners and request path never call the global setTimeout or setInterval", async () => {
  // Their first call makes Deno load its Node timers: about 2 MiB of the runtime's RSS (BENCHMARKS.md).
  const files = [
    "app.ts",
    "ctx.ts",
    "front_door.ts",
    "http1.ts",
    "http1_stream.ts",
    "listeners.ts",
    "main.ts",
  ]
    .concat(["metrics.ts", "stream.ts", "conn_listener.ts", "unix_listener.ts"]);
  for (const file of files) {
    const { code } = blank(await Deno.readTextFile(new URL(`../../../runtime/${file}`, import.meta.url)));
    assert.doesNotMatch(code, /\bset(Timeout|Interval)\s*\(/, `runtime/${file}`);
  }
});
