/**
 * `list` and `get`: managed programs with their links and metadata; with `all`, exactly the set of
 * programs the kernel has, agreeing with `bpftool prog list -j` on id, type, name, tag and map ids.
 */
import assert from "node:assert/strict";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, startTestRuntime } from "../../_runtime.ts";
import * as bpf from "../../../ffi/libbpf.ts";
import { list } from "../../../functions/list.ts";
import { z } from "../../../model/zod.ts";

interface BpftoolProg {
  id: number;
  type: string;
  name?: string;
  tag: string;
  map_ids?: number[];
  uid: number;
}

async function bpftoolPrograms(): Promise<BpftoolProg[]> {
  const { code, stdout } = await new Deno.Command("bpftool", {
    args: ["prog", "list", "-j"],
    stdout: "piped",
  }).output();
  assert.equal(code, 0);
  return JSON.parse(new TextDecoder().decode(stdout));
}

Deno.test("list --all agrees with the kernel's enumeration and with bpftool prog list", async () => {
  await using net = await VethPair.create();
  await using rt = await startTestRuntime();
  const { programs: [managed] } = await rt.invoke("load", {
    bytecode: { path: bytecodePath("xdp_counter") },
    programs: [{ name: "xdp_counter", type: "xdp" }],
    metadata: { team: "net", purpose: "list-test" },
  });
  const { linkId } = await rt.invoke("attach", {
    programId: managed.id,
    attach: { type: "xdp", iface: net.hostIf, netns: net.hostNs },
  });
  // An unmanaged program, loaded by someone else (tc) behind bpfd's back.
  const foreignId = await net.addForeignTcFilter(bytecodePath("tc_counter"), 1);

  const idsBefore = new Set(bpf.programIds());
  const listed = (await rt.invoke("list", { all: true })).programs as Array<{
    id: number;
    managed: boolean;
    kernel: { type: string; name: string; tag: string; mapIds: number[]; uid: number };
    links: Array<{ id: number }>;
    program?: { metadata: Record<string, string> };
  }>;
  const answer = await rt.invoke("list", { all: true });
  assert.deepEqual(z.parse(list.output, answer), answer, "list's answer, not validated per call, is valid");
  const tool = await bpftoolPrograms();
  const idsAfter = new Set(bpf.programIds());
  // Programs there before the list and still there after bpftool (others may load and unload meanwhile).
  const stable = new Set([...idsBefore].filter((id) => idsAfter.has(id) && tool.some((p) => p.id === id)));
  assert.deepEqual(listed.map((p) => p.id).filter((id) => stable.has(id)), [...stable]);
  for (const p of tool.filter((p) => stable.has(p.id))) {
    const mine = listed.find((l) => l.id === p.id)!;
    assert.equal(mine.kernel.type, p.type, `type of ${p.id}`);
    assert.equal(mine.kernel.name, p.name ?? "", `name of ${p.id}`);
    assert.equal(mine.kernel.tag, p.tag, `tag of ${p.id}`);
    assert.deepEqual(mine.kernel.mapIds, p.map_ids ?? [], `map ids of ${p.id}`);
    assert.equal(mine.kernel.uid, p.uid);
  }
  const mine = listed.find((p) => p.id === managed.id)!;
  assert.equal(mine.managed, true);
  assert.deepEqual(mine.links.map((l) => l.id), [linkId]);
  const foreign = listed.find((p) => p.id === foreignId);
  assert.equal(foreign?.managed, false, "the program tc loaded is listed as unmanaged");

  assert.deepEqual((await rt.invoke("list", {})).programs.map((p: { id: number }) => p.id), [managed.id]);
  assert.deepEqual((await rt.invoke("list", { metadata: { team: "net" } })).programs.length, 1);
  assert.deepEqual((await rt.invoke("list", { metadata: { team: "storage" } })).programs.length, 0);
  assert.deepEqual((await rt.invoke("list", { type: "tc" })).programs.length, 0);
  assert.ok(
    (await rt.invoke("list", { all: true, type: "tc" })).programs.some((p: { id: number }) =>
      p.id === foreignId
    ),
  );

  const got = await rt.invoke("get", { programId: managed.id });
  assert.equal(got.program.loadedBy.user, "test");
  assert.deepEqual(got.program.metadata, { team: "net", purpose: "list-test" });
  const unmanaged = await rt.invoke("get", { programId: foreignId });
  assert.equal(unmanaged.managed, false);
  assert.equal(unmanaged.kernel.name, "tc_counter");
});
