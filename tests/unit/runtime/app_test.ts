import * as assert from "node:assert/strict";
import { boundedError, jsonShapeProblem } from "../../../runtime/app.ts";

Deno.test("jsonShapeProblem: deep nesting and huge value counts are refused before parsing; strings do not count", () => {
  assert.equal(jsonShapeProblem('{"a":[1,2,{"b":"[[[[,,,,"}]}'), undefined);
  assert.match(jsonShapeProblem("[".repeat(65))!, /nested deeper than 64/);
  assert.match(jsonShapeProblem('{"a":'.repeat(65))!, /nested deeper than 64/);
  assert.equal(jsonShapeProblem(`[${"[],".repeat(63)}[]]`), undefined);
  assert.match(jsonShapeProblem(`[${"1,".repeat(2048)}1]`)!, /more than 2048 values/);
  assert.equal(jsonShapeProblem(`{"s":"${",".repeat(30_000)}","t":"\\"[[["}`), undefined);
});

Deno.test("boundedError: a message of any size becomes at most 4 KiB, lists 100 entries, with markers", () => {
  const issues = Array.from(
    { length: 30_000 },
    (_, i) => ({ field: `programs.${i}.name`, message: "x".repeat(5000) }),
  );
  const body = boundedError({ error: { code: "invalid_argument", message: "m".repeat(1 << 20), issues } });
  const text = JSON.stringify(body);
  assert.ok(text.length < 200_000, `${text.length} bytes`);
  assert.match(body.error.message, /… \[1044480 more characters\]$/);
  const kept = body.error.issues as unknown[];
  assert.equal(kept.length, 101);
  assert.equal(kept[100], "… [29900 more]");
});
