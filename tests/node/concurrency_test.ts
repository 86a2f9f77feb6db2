/**
 * Calls that touch the same hook are serialized (exactly one of two racing XDP attaches to one
 * interface wins, the other gets 409); calls on different hooks run side by side.
 */
import assert from "node:assert/strict";
import { VethPair } from "../_netns.ts";
import { bytecodePath, startTestRuntime } from "../_runtime.ts";

Deno.test("racing attaches: one hook → one winner and a 409; different hooks → all succeed", async () => {
  await using a = await VethPair.create();
  await using b = await VethPair.create();
  await using rt = await startTestRuntime();
  const load = async () =>
    (await rt.invoke("load", {
      bytecode: { path: bytecodePath("xdp_counter") },
      programs: [{ name: "xdp_counter", type: "xdp" }],
    }))
      .programs[0].id as number;
  const [p1, p2, p3] = [await load(), await load(), await load()];

  const racing = await Promise.all(
    [p1, p2].map((programId) =>
      rt.call("attach", { programId, attach: { type: "xdp", iface: a.hostIf, netns: a.hostNs } })
    ),
  );
  assert.deepEqual(racing.map((r) => r.status).sort(), [200, 409]);
  assert.equal(rt.node.state.links().length, 1);

  const other = await rt.call("attach", {
    programId: p3,
    attach: { type: "xdp", iface: b.hostIf, netns: b.hostNs },
  });
  assert.equal(other.status, 200);
  assert.equal(await a.ping(2), 2);
  assert.equal(await b.ping(2), 2);
});
