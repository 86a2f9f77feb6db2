/** What the attach kinds share, on records alone. */
import assert from "node:assert/strict";
import {
  chainMember,
  type HookMember,
  isSharedHook,
  knownIds,
  placed,
} from "../../../../kernel/attach/kind.ts";
import type { AttachSpec, LinkRecord, ProgramRecord } from "../../../../model/schemas.ts";

const XDP: AttachSpec = { type: "xdp", iface: "veth0", priority: 10, proceedOn: ["pass"], mode: "native" };

function member(id: number, programId: number, attach: AttachSpec, slotProgramId?: number): HookMember {
  const link: LinkRecord = {
    id,
    programId,
    attach,
    slotProgramId,
    createdAt: "",
    createdBy: { user: "test", via: "in-process" },
  };
  const program: ProgramRecord = {
    id: programId,
    name: `prog${programId}`,
    type: "xdp",
    tag: "",
    bytecode: { path: "/x.o" },
    pinPath: "",
    mapPinPath: "",
    maps: {},
    globalData: {},
    metadata: {},
    loadedAt: "",
    loadedBy: { user: "test", via: "in-process" },
  };
  return { link, program };
}

Deno.test("attach kinds: xdp, tc and tcx are shared hooks; every other kind is a plain link", () => {
  assert.ok(isSharedHook(XDP));
  assert.ok(
    isSharedHook({ type: "tcx", iface: "v", direction: "ingress", priority: 1, proceedOn: ["unspec"] }),
  );
  assert.ok(!isSharedHook({ type: "tracepoint", tracepoint: "syscalls/sys_enter_getppid" }));
  assert.ok(!isSharedHook({ type: "fentry" }));
});

Deno.test("attach kinds: bpfd's program ids on a hook include the slot extensions", () => {
  const links = [member(1, 10, XDP, 11).link, member(2, 20, XDP).link];
  assert.deepEqual([...knownIds(links)].sort(), [10, 11, 20]);
});

Deno.test("attach kinds: a chain member takes its place from the link's spec and reloads its own program", async () => {
  const m = member(3, 30, XDP, 31);
  const reloaded: number[] = [];
  const chain = chainMember(m, (p) => {
    reloaded.push(p.id);
    return Promise.resolve({ objectPath: "/x.o", name: p.name, globalData: {}, maps: {} });
  });
  assert.deepEqual(
    { linkId: chain.linkId, programId: chain.programId, name: chain.name, priority: chain.priority },
    { linkId: 3, programId: 30, name: "prog30", priority: 10 },
  );
  assert.deepEqual(chain.proceedOn, ["pass"]);
  assert.equal(chain.slotProgramId, 31);
  await chain.reload();
  assert.deepEqual(reloaded, [30]);
  assert.throws(
    () => chainMember(member(4, 40, { type: "fentry" }), () => Promise.reject()),
    /not on a network hook/,
  );
});

Deno.test("attach kinds: the peers a change moved are keyed by link id", () => {
  const peers = [member(1, 10, XDP), member(2, 20, XDP)];
  const moved = placed(peers, (l) => ({ ifindex: 7, slotProgramId: l.programId + 1 }));
  assert.deepEqual([...moved], [[1, { ifindex: 7, slotProgramId: 11 }], [2, {
    ifindex: 7,
    slotProgramId: 21,
  }]]);
});
