/**
 * On a kernel that allows extension (freplace) programs: a program joining a dispatcher is loaded again
 * as a slot extension from its recorded object; one whose file changed since load is refused (409
 * object_changed naming it) and the chain keeps running as it was.
 * @module
 */
import assert from "node:assert/strict";
import { capTest } from "../../_caps.ts";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, startTestRuntime } from "../../_runtime.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

capTest({
  name: "XDP dispatcher: a slot reload from an object file changed since load is refused, the chain stays",
  needs: ["freplace"],
}, async () => {
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const programs = [{ name: "xdp_counter", type: "xdp" }];
  const copy = `${rt.dir}/first.bpf.o`;
  await Deno.copyFile(bytecodePath("xdp_counter"), copy);
  const load = async (path: string) =>
    (await rt.invoke("load", { bytecode: { path }, programs })).programs[0];
  const attach = (programId: number, priority: number) =>
    rt.call("attach", { programId, attach: { type: "xdp", iface: net.hostIf, netns: net.hostNs, priority } });
  const chain = async () =>
    (await rt.invoke("list", { type: "xdp" })).hooks[0].chain.map((e: Json) => e.programId);
  const first = await load(bytecodePath("xdp_counter"));
  const second = await load(bytecodePath("xdp_counter"));
  const third = await load(copy);
  assert.equal((await attach(first.id, 10)).status, 200);
  assert.equal((await attach(second.id, 20)).status, 200);
  assert.deepEqual(await chain(), [first.id, second.id]);

  await Deno.writeFile(copy, new Uint8Array([0]), { append: true });
  const refused = await attach(third.id, 30);
  assert.equal(refused.status, 409, JSON.stringify(refused.body));
  assert.equal(refused.body.error.code, "object_changed");
  assert.match(refused.body.error.message, new RegExp(`^program ${third.id}: its object file`));
  assert.deepEqual(await chain(), [first.id, second.id], "the chain runs as it did");
  assert.equal(await net.ping(2), 2);
  assert.equal((await rt.call("unload", { programId: third.id })).status, 200);
});
