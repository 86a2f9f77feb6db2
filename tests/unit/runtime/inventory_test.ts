import assert from "node:assert/strict";
import { fitToSize } from "../../../runtime/inventory.ts";
import type { InventoryProgram } from "../../../model/inventory.ts";

const program = (id: number, managed: boolean): InventoryProgram => ({
  id,
  name: `p${id}`.padEnd(50, "x"),
  type: "kprobe",
  tag: "0011223344556677",
  loadedAt: "2026-12-01T00:00:00.000Z",
  uid: 0,
  managed,
  mapIds: [],
  attachments: [],
});

Deno.test("inventory size: under the budget everything is kept; past it managed programs first, the rest counted", () => {
  const all = [program(5, false), program(3, true), program(1, false), program(4, true)];
  assert.deepEqual(fitToSize(all, 100, 1_000_000), {
    kept: [...all].sort((a, b) => a.id - b.id),
    omitted: 0,
  });
  const one = JSON.stringify(all[0]).length + 1;
  const { kept, omitted } = fitToSize(all, 100, 100 + 3 * one);
  assert.deepEqual(kept.map((p) => p.id), [1, 3, 4]);
  assert.equal(omitted, 1);
});
