/** `bpfd trace`'s durations and its reading of the NDJSON stream. */
import assert from "node:assert/strict";
import { ndjson, parseDuration } from "../../../cli/trace.ts";

Deno.test("bpfd trace: durations in seconds, minutes or hours; anything else is refused", () => {
  assert.equal(parseDuration("30s"), 30);
  assert.equal(parseDuration("2m"), 120);
  assert.equal(parseDuration("1h"), 3600);
  assert.equal(parseDuration("45"), 45);
  for (const bad of ["", "1.5s", "-3", "10d", "s"]) assert.equal(parseDuration(bad), undefined, bad);
});

Deno.test("bpfd trace: events are read whole across chunk boundaries", async () => {
  const text = '{"session":{"id":"a"}}\n{"line":"@x: 1"}\n{"end":{"reason":"expired"}}';
  const chunks = [text.slice(0, 5), text.slice(5, 30), text.slice(30)];
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (const chunk of chunks) c.enqueue(new TextEncoder().encode(chunk));
      c.close();
    },
  });
  const events = [];
  for await (const e of ndjson(body)) events.push(e);
  assert.deepEqual(events, [{ session: { id: "a" } }, { line: "@x: 1" }, { end: { reason: "expired" } }]);
});
