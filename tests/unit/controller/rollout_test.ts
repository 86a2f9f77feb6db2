import assert from "node:assert/strict";
import { Rollout, unavailableBudget } from "../../../controller/rollout.ts";

Deno.test("roll-out budget: a percentage rounds down, a count is taken as is, never below 1", () => {
  assert.equal(unavailableBudget(undefined, 100), 10);
  assert.equal(unavailableBudget("25%", 10), 2);
  assert.equal(unavailableBudget("10%", 5), 1);
  assert.equal(unavailableBudget("3", 100), 3);
  assert.equal(unavailableBudget("0", 100), 1);
});

Deno.test("roll-out: no more nodes between versions than the budget; failing nodes use it up", () => {
  const r = new Rollout();
  const opts = { selected: 20, maxUnavailable: "10%" }; // 2
  assert.equal(r.acquire("c", "a", opts), true);
  assert.equal(r.acquire("c", "b", opts), true);
  assert.equal(r.acquire("c", "c", opts), false, "a third slot");
  assert.equal(r.acquire("other", "c", opts), true, "budgets are per config");
  r.release("c", "a", false);
  r.release("c", "b", true); // b failed: still unavailable
  assert.equal(r.acquire("c", "c", opts), true);
  assert.equal(r.acquire("c", "d", opts), false);
  assert.equal(
    r.acquire("c", "b", opts),
    true,
    "the failing node may try again: its own failure is its slot",
  );
  r.release("c", "b", false);
  r.release("c", "c", false);
  assert.equal(r.peak.get("c"), 2);
});

Deno.test("roll-out: a released slot wakes one waiting node of the same config", () => {
  const r = new Rollout();
  const opts = { selected: 10, maxUnavailable: "1" };
  assert.equal(r.acquire("c", "a", opts), true);
  assert.equal(r.acquire("c", "b", opts), false);
  r.wait("c", "b");
  r.wait("c", "x");
  assert.equal(r.release("c", "a", false), "b");
  assert.equal(r.acquire("c", "b", opts), true);
  assert.equal(r.release("c", "b", false), "x");
  assert.equal(r.release("c", "x", false), undefined);
});
