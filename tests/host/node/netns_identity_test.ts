/**
 * A namespace named by `/proc/<pid>/ns/net` is recorded by identity (nsfs device and inode) at attach;
 * once the path names another namespace (the pid died and was reused) every later use treats the
 * namespace as gone and never acts in the other one.
 */
import assert from "node:assert/strict";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, startTestRuntime } from "../../_runtime.ts";
import type { LinkRecord } from "../../../model/schemas.ts";

const ROOT = { user: "uid:0", via: "in-process" };

Deno.test("a /proc/<pid>/ns/net path that names another namespace than at attach is treated as gone", async () => {
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const child = new Deno.Command("nsenter", { args: [`--net=/run/netns/${net.hostNs}`, "sleep", "60"] })
    .spawn();
  try {
    const netns = `/proc/${child.pid}/ns/net`;
    for (
      let i = 0;
      i < 100 && Deno.statSync(netns).ino !== Deno.statSync(`/run/netns/${net.hostNs}`).ino;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 10)); // until nsenter has entered the namespace
    }
    const { programs: [program] } = await rt.invoke("load", {
      bytecode: { path: bytecodePath("xdp_counter") },
      programs: [{ name: "xdp_counter", type: "xdp" }],
    });
    const { linkId } = await rt.invoke("attach", {
      programId: program.id,
      attach: { type: "xdp", iface: net.hostIf, netns },
    });
    const ctx = rt.node.ctxFor(ROOT);
    const link = ctx.state.link(linkId)!;
    const { dev, ino } = link.netnsId!;
    const stat = Deno.statSync(`/run/netns/${net.hostNs}`);
    assert.deepEqual({ dev, ino }, { dev: stat.dev, ino: stat.ino });
    assert.equal(ctx.kernel.attachmentAlive(link), true);

    // The path now names another namespace than the one recorded (as after pid reuse).
    const other: LinkRecord = { ...link, netnsId: { dev, ino: ino + 1 } };
    await ctx.state.update({ putLinks: [other] });
    assert.equal(ctx.kernel.attachmentAlive(other), false, "not alive: its namespace is gone");
    const modify = await rt.call("modify", { linkId, priority: 7 });
    assert.equal(modify.status, 404, JSON.stringify(modify.body));
    assert.match(modify.body.error.message, /netns .* not found/);
    assert.deepEqual(await ctx.kernel.detach(other, {}), new Map(), "detach acts in no namespace");
    const shown = await net.exec(net.hostNs, "ip", "link", "show", net.hostIf);
    assert.match(shown, new RegExp(`prog/xdp id ${program.id}`), "nothing was done in the other namespace");

    // The pid exits: the path names no namespace any more.
    child.kill("SIGKILL");
    await child.status;
    assert.equal(ctx.kernel.attachmentAlive(link), false);
    await ctx.state.update({ putLinks: [link] });
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
  }
});

Deno.test("detaching a tcx link whose namespace path names another namespace releases only bpfd's pin", async () => {
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const { programs: [program] } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("tc_counter") },
    programs: [{ name: "tc_counter", type: "tcx" }],
  });
  const { linkId } = await rt.invoke("attach", {
    programId: program.id,
    attach: { type: "tcx", iface: net.hostIf, netns: net.hostNs, direction: "ingress" },
  });
  const ctx = rt.node.ctxFor(ROOT);
  const link = ctx.state.link(linkId)!;
  await ctx.state.update({
    putLinks: [{ ...link, netnsId: { ...link.netnsId!, ino: link.netnsId!.ino + 1 } }],
  });
  const detach = await rt.call("detach", { linkId });
  assert.equal(detach.status, 200, JSON.stringify(detach.body));
  assert.equal(ctx.state.link(linkId), undefined);
  assert.equal(await Deno.lstat(`${rt.dir}/fs/links/${linkId}`).then(() => true, () => false), false);
});
