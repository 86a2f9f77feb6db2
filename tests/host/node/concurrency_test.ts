/**
 * Calls that touch the same hook are serialized (exactly one of two racing XDP attaches to one
 * interface see each other: one wins and the other gets 409 where chains are impossible); calls on different hooks run side by side.
 */
import assert from "node:assert/strict";
import { detectCaps } from "../../_caps.ts";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, startTestRuntime } from "../../_runtime.ts";

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
  // Serialized on the hook: the second sees the first. Where the kernel allows extension programs both
  // join one dispatcher chain; where it does not (this host), the second is refused.
  const chains = detectCaps().caps.freplace.available;
  assert.deepEqual(racing.map((r) => r.status).sort(), chains ? [200, 200] : [200, 409]);
  assert.equal(rt.node.state.links().length, chains ? 2 : 1);

  const other = await rt.call("attach", {
    programId: p3,
    attach: { type: "xdp", iface: b.hostIf, netns: b.hostNs },
  });
  assert.equal(other.status, 200);
  assert.equal(await a.ping(2), 2);
  assert.equal(await b.ping(2), 2);
});
