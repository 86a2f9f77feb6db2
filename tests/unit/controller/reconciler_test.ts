/** The reconciler's pure parts: status conditions, JSON comparison, BpfProgram names. */
import assert from "node:assert/strict";
import { jsonEqual, programName, setCondition } from "../../../controller/objects.ts";

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
