/**
 * Global data values are shown only to callers who may load programs (in-process, the unix socket, TCP
 * callers authorized to load); a read-only caller sees each variable's name and size.
 */
import assert from "node:assert/strict";
import { bytecodePath, startTestRuntime } from "../../_runtime.ts";
import { invoke } from "../../../functions/_define.ts";
import { get } from "../../../functions/get.ts";
import { list } from "../../../functions/list.ts";
import { load } from "../../../functions/load.ts";
import type { Identity, ProgramView } from "../../../model/schemas.ts";

Deno.test("global data values: shown to callers who may load, only names and sizes to readers", async () => {
  await using rt = await startTestRuntime();
  const drop = new Uint8Array([1, 0, 0, 0]);
  const { programs: [loaded] } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("xdp_counter") },
    programs: [{ name: "xdp_counter", type: "xdp" }],
    globalData: { verdict: btoa(String.fromCharCode(...drop)) },
  });
  const summary = { verdict: { bytes: 4 } };
  const seen = async (caller: Identity) => {
    const ctx = rt.node.ctxFor(caller);
    const one = await invoke(get, { programId: loaded.id }, ctx);
    const all = await invoke(list, {}, ctx);
    const listed = all.programs.find((p: ProgramView) => p.id === loaded.id)!;
    assert.deepEqual(one.globalData, summary);
    assert.deepEqual(listed.program?.globalData, one.program?.globalData);
    return one.program?.globalData;
  };
  const values = { verdict: btoa(String.fromCharCode(...drop)) };
  assert.deepEqual(loaded.program.globalData, values, "the loader sees what it set");
  assert.deepEqual(await seen({ user: "uid:0", via: "in-process" }), values);
  assert.deepEqual(await seen({ user: "uid:1000", uid: 1000, gid: 1000, via: "unix-socket" }), values);
  assert.deepEqual(await seen({ user: "admin", via: "tls token", mayLoad: true }), values);
  assert.deepEqual(await seen({ user: "viewer", via: "tls token" }), {});
  assert.deepEqual(await seen({ user: "bpfd", via: "inventory" }), {});
  const byToken = await invoke(load, {
    bytecode: { path: bytecodePath("xdp_counter") },
    programs: [{ name: "xdp_counter", type: "xdp" }],
    globalData: values,
  }, rt.node.ctxFor({ user: "admin", via: "tls token" }));
  assert.deepEqual(byToken.programs[0].program?.globalData, values, "a load answers with what it set");
});
