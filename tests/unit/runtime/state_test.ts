import assert from "node:assert/strict";
import { StateStore } from "../../../runtime/state.ts";
import type { LinkRecord, ProgramRecord } from "../../../model/schemas.ts";

const program = (id: number, note = ""): ProgramRecord => ({
  id,
  name: "xdp_counter",
  type: "xdp",
  tag: "39dbf064de9c528e",
  bytecode: { path: "/objects/xdp_counter.bpf.o" },
  pinPath: `/run/bpfd/fs/progs/${id}`,
  mapPinPath: `/run/bpfd/fs/maps/${id}`,
  maps: { counter: `/run/bpfd/fs/maps/${id}/counter` },
  globalData: note ? { note: btoa(note) } : {},
  metadata: { app: "test" },
  loadedAt: "2026-12-01T00:00:00.000Z",
  loadedBy: { user: "test", via: "in-process" },
});

const link = (id: number, programId: number): LinkRecord => ({
  id,
  programId,
  attach: { type: "tracepoint", tracepoint: "syscalls/sys_enter_getppid" },
  createdAt: "2026-12-01T00:00:00.000Z",
  createdBy: { user: "test", via: "in-process" },
});

Deno.test("state store: records written one per line through a small buffer (one larger than it too) read back the same", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-state-" });
  try {
    const store = await StateStore.open(dir);
    const programs = Array.from({ length: 300 }, (_, i) => program(i + 1));
    programs.push(program(1000, "x".repeat(100_000))); // beyond the 64 KiB write buffer
    const links = [
      link(store.allocateLinkId(), 1),
      link(store.allocateLinkId(), 1),
      link(store.allocateLinkId(), 2),
    ];
    await store.update({ putPrograms: programs, putLinks: links });
    await store.update({ deletePrograms: [3], deleteLinks: [links[1].id] });

    const text = await Deno.readTextFile(store.path);
    assert.equal(text.split("\n").length, 300 + 2 + 4, "a line per record, header, separator and end");
    const again = await StateStore.open(dir);
    assert.deepEqual(again.programs(), store.programs());
    assert.equal(again.programs().length, 300);
    assert.equal(again.program(1000)?.globalData.note, btoa("x".repeat(100_000)));
    assert.deepEqual(again.links(1).map((l) => l.id), [links[0].id]);
    assert.deepEqual(again.links(2).map((l) => l.id), [links[2].id]);
    assert.deepEqual(again.links().map((l) => l.id), [links[0].id, links[2].id]);
    assert.equal(again.allocateLinkId(), 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
