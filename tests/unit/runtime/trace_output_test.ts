/** The output caps of a trace session, on a fake clock. */
import assert from "node:assert/strict";
import { OutputBudget } from "../../../runtime/trace_output.ts";

Deno.test("trace output: over the rate, lines are dropped with one notice per stretch; the next second passes again", () => {
  const budget = new OutputBudget({ bytesPerSecond: 100, totalBytes: 1000, finalBytes: 50 });
  assert.equal(budget.take(60, 0), "pass");
  assert.equal(budget.take(60, 10), "notice");
  assert.equal(budget.take(50, 20), "drop");
  assert.equal(budget.take(60, 1000), "pass");
  assert.equal(budget.dropped, 110);
});

Deno.test("trace output: over the total, everything is dropped until the final printout, which has its own reserve", () => {
  const budget = new OutputBudget({ bytesPerSecond: 1000, totalBytes: 100, finalBytes: 50 });
  assert.equal(budget.take(100, 0), "pass");
  assert.equal(budget.take(1, 5000), "notice");
  assert.equal(budget.take(1, 9000), "drop");
  budget.final();
  assert.equal(budget.take(40, 9001), "pass", "the final maps come at any rate");
  assert.equal(budget.take(20, 9002), "notice");
});
