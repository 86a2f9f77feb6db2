/**
 * A program's object file is hashed at load and checked whenever a dispatcher slot reloads it from its
 * path: a file changed since load is refused (409 object_changed naming the program) and the hook keeps
 * running what it ran; a record from before hashes were kept gets its hash at the first reload.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, startTestRuntime } from "../../_runtime.ts";
import { reloadPlan } from "../../../functions/_hooks.ts";
import type { ProgramRecord } from "../../../model/schemas.ts";

const ROOT = { user: "uid:0", via: "in-process" };

Deno.test("a slot reload refuses an object file changed since load; the hook keeps its program", async () => {
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const path = `${rt.dir}/first.bpf.o`;
  await Deno.copyFile(bytecodePath("xdp_counter"), path);
  const programs = [{ name: "xdp_counter", type: "xdp" }];
  const { programs: [first] } = await rt.invoke("load", { bytecode: { path }, programs });
  const sha256 = createHash("sha256").update(await Deno.readFile(path)).digest("hex");
  assert.deepEqual(first.program.bytecode, { path, sha256 });
  const attach = { type: "xdp", iface: net.hostIf, netns: net.hostNs };
  await rt.invoke("attach", { programId: first.id, attach: { ...attach, priority: 10 } });
  const { programs: [second] } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("xdp_counter") },
    programs,
  });

  await Deno.writeFile(path, new Uint8Array([0x7f, 0x45, 0x4c, 0x46]), { append: true });
  const refused = await rt.call("attach", { programId: second.id, attach: { ...attach, priority: 20 } });
  assert.equal(refused.status, 409, JSON.stringify(refused.body));
  assert.equal(refused.body.error.code, "object_changed");
  assert.match(refused.body.error.message, new RegExp(`^program ${first.id}: its object file .* changed`));
  assert.match(
    await net.exec(net.hostNs, "ip", "link", "show", net.hostIf),
    new RegExp(`prog/xdp id ${first.id}`),
    "the hook still runs the first program",
  );
  assert.equal(await net.ping(2), 2);
});

Deno.test("a record without a hash (written before hashes were kept) gets one at its first reload", async () => {
  await using rt = await startTestRuntime();
  const path = `${rt.dir}/old.bpf.o`;
  await Deno.copyFile(bytecodePath("xdp_counter"), path);
  const { programs: [loaded] } = await rt.invoke("load", {
    bytecode: { path },
    programs: [{ name: "xdp_counter", type: "xdp" }],
  });
  const ctx = rt.node.ctxFor(ROOT);
  const old: ProgramRecord = { ...ctx.state.program(loaded.id)!, bytecode: { path } };
  await ctx.state.update({ putPrograms: [old] });
  const plan = await reloadPlan(ctx, old);
  plan.close?.();
  assert.deepEqual(ctx.state.program(loaded.id)!.bytecode, loaded.program.bytecode, "the hash is recorded");
  await Deno.writeFile(path, new Uint8Array([0]), { append: true });
  await assert.rejects(() => reloadPlan(ctx, ctx.state.program(loaded.id)!), /changed .*since it was loaded/);
});
