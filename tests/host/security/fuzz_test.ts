/**
 * The seeded bad-input run that CI does: 2,000 mutated requests for every function through the socket's
 * app (its front-door checks included), each answered with a status below 500 (503 only where no image
 * store is configured), the runtime still answering, and after cleanup nothing of them left in the
 * kernel or the bpffs. `deno task bench fuzz` runs 10,000+ (BENCHMARKS.md).
 */
import * as assert from "node:assert/strict";
import { bytecodePath, kernelSnapshot, leftovers, startTestRuntime } from "../../_runtime.ts";
import { VethPair } from "../../_netns.ts";
import { fuzzRun, inProcessTarget } from "./_fuzz_run.ts";

const SEED = Number(Deno.env.get("BPFD_FUZZ_SEED") ?? 12);

Deno.test(`fuzz: 2,000 mutated requests (seed ${SEED}) → no 5xx, runtime alive, nothing left behind`, async () => {
  const before = kernelSnapshot();
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const result = await fuzzRun(inProcessTarget(rt), net, {
    seed: SEED,
    count: 2000,
    objectPath: bytecodePath("xdp_counter"),
  });
  assert.deepEqual(result.failures, [], result.failures.slice(0, 5).join("\n"));
  assert.ok(result.statuses[400] > 500, JSON.stringify(result.statuses));
  assert.deepEqual(result.leftPins, []);
  await rt.close();
  assert.deepEqual(await leftovers(before, ["xdp_counter"]), []);
});
