/**
 * `list` reads the kernel for all programs at once (kernel/inspect.ts `ProgramInfos.many`): with run stats
 * collected (the runtime's `bpfStats`) each program's run count moves with real traffic from one `list` to
 * the next; without, a program unloaded behind bpfd's back is shown gone by the next `list`, not later.
 */
import assert from "node:assert/strict";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, cleanUp, type RuntimeProcess, startWithConfig } from "../../_runtime.ts";
import * as bpf from "../../../ffi/libbpf.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const list = async (rt: RuntimeProcess) => (await rt.call("list", {})).body.programs as Json[];

const LOAD = {
  bytecode: { path: bytecodePath("xdp_counter") },
  programs: [{ name: "xdp_counter", type: "xdp" }],
};

Deno.test("list: with run stats collected, a program's run count moves with real pings between two lists", async () => {
  await using net = await VethPair.create();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-list-stats-" });
  let rt: RuntimeProcess | undefined;
  try {
    const runtime = rt = await startWithConfig(dir, { bpfStats: true });
    const { body: loaded } = await runtime.call("load", LOAD);
    const id = loaded.programs[0].id;
    const attach = await runtime.call("attach", {
      programId: id,
      attach: { type: "xdp", iface: net.hostIf, netns: net.hostNs },
    });
    assert.equal(attach.status, 200, JSON.stringify(attach.body));
    const runs = async () => (await list(runtime)).find((p) => p.id === id)?.kernel?.runCount ?? -1;
    const before = await runs();
    assert.equal(await net.ping(5), 5);
    const after = await runs();
    assert.ok(after >= before + 5, `run count ${before} → ${after} after 5 pings`);
    assert.equal(await net.ping(3), 3);
    assert.ok(await runs() >= after + 3, "the next list moves again");
  } finally {
    await cleanUp(rt, dir);
  }
});

Deno.test("list: without run stats, a program unloaded behind bpfd's back is gone from the next list", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-list-stats-" });
  let rt: RuntimeProcess | undefined;
  try {
    const runtime = rt = await startWithConfig(dir, {});
    const { body: loaded } = await runtime.call("load", LOAD);
    const id = loaded.programs[0].id;
    for (let i = 0; i < 3; i++) {
      const shown = (await list(runtime)).find((p) => p.id === id);
      assert.equal(shown?.kernel?.id, id, "loaded, and read again from what the last list read");
    }
    await Deno.remove(`${dir}/fs/progs/${id}`); // not attached: the kernel frees it after a grace period
    for (let i = 0; i < 100 && bpf.programIds().includes(id); i++) {
      await new Promise((ok) => setTimeout(ok, 20));
    }
    assert.equal(bpf.programIds().includes(id), false, "the kernel kept the program");
    const shown = (await list(runtime)).find((p) => p.id === id);
    assert.ok(shown, "bpfd still has its record");
    assert.equal(shown.kernel, undefined, "and shows that the kernel no longer has it");
  } finally {
    await cleanUp(rt, dir);
  }
});
