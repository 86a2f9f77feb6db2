/** Chain order and proceed-on encoding, without a kernel. */
import assert from "node:assert/strict";
import { TcActionValue, XdpActionValue } from "../../../../ffi/abi.ts";
import {
  type ChainKey,
  compareChainKeys,
  kernelName,
  proceedOnMask,
  proceedOnNames,
} from "../../../../kernel/chains/order.ts";

const sorted = (keys: ChainKey[]) => [...keys].sort(compareChainKeys).map((k) => k.programId);

Deno.test("chain order: lower priority first, then name, then bpfd's link id (foreign last), then program id", () => {
  assert.deepEqual(
    sorted([
      { priority: 50, name: "a", linkId: 1, programId: 1 },
      { priority: 10, name: "z", linkId: 2, programId: 2 },
    ]),
    [2, 1],
  );
  assert.deepEqual(
    sorted([
      { priority: 10, name: "beta", linkId: 1, programId: 1 },
      { priority: 10, name: "alpha", linkId: 2, programId: 2 },
    ]),
    [2, 1],
    "ties go by name, as libxdp sorts",
  );
  assert.deepEqual(
    sorted([
      { priority: 10, name: "same", programId: 1 },
      { priority: 10, name: "same", linkId: 7, programId: 2 },
      { priority: 10, name: "same", linkId: 3, programId: 3 },
    ]),
    [3, 2, 1],
    "then bpfd's link ids, foreign programs (no link id) after them",
  );
  assert.deepEqual(
    sorted([
      { priority: 10, name: "same", programId: 9 },
      { priority: 10, name: "same", programId: 4 },
    ]),
    [4, 9],
  );
});

Deno.test("chain order: the same set of programs always gets the same order, whatever order it comes in", () => {
  const keys: ChainKey[] = [
    { priority: 20, name: "b", linkId: 4, programId: 40 },
    { priority: 20, name: "a", programId: 11 },
    { priority: 5, name: "c", linkId: 9, programId: 90 },
    { priority: 20, name: "a", linkId: 2, programId: 20 },
  ];
  const expected = [90, 20, 11, 40];
  assert.deepEqual(sorted(keys), expected);
  assert.deepEqual(sorted([...keys].reverse()), expected);
});

Deno.test("kernelName keeps the kernel's 15 characters of a program name", () => {
  assert.equal(kernelName("a_rather_long_program_name"), "a_rather_long_p");
  assert.equal(kernelName("short"), "short");
});

Deno.test("proceed-on: XDP sets bit 1 << verdict; dispatcher_return is verdict 31", () => {
  assert.equal(proceedOnMask("xdp", ["pass"]), 1 << XdpActionValue.pass);
  assert.equal(proceedOnMask("xdp", ["pass", "dispatcher_return"]), ((1 << 2) | (1 << 31)) >>> 0);
  assert.equal(proceedOnMask("xdp", ["drop", "drop"]), 1 << XdpActionValue.drop);
});

Deno.test("proceed-on: tc sets bit 1 << (verdict + 1), so unspec (-1) is bit 0", () => {
  assert.equal(proceedOnMask("tc", ["unspec"]), 1);
  assert.equal(proceedOnMask("tc", ["pipe"]), 1 << (TcActionValue.pipe + 1));
  assert.equal(proceedOnMask("tc", ["pipe", "dispatcher_return"]), ((1 << 4) | (1 << 31)) >>> 0);
});

Deno.test("proceed-on: names and masks convert both ways; an unknown action is an error", () => {
  for (
    const [kind, names] of [["xdp", ["drop", "pass", "dispatcher_return"]], ["tc", [
      "unspec",
      "ok",
      "shot",
    ]]] as const
  ) {
    assert.deepEqual(proceedOnNames(kind, proceedOnMask(kind, names)).sort(), [...names].sort());
  }
  assert.throws(() => proceedOnMask("xdp", ["pipe"]), /unknown xdp action pipe/);
});
