import assert from "node:assert/strict";
import { orderChange, samePlacement } from "../../../functions/_placement.ts";
import { AttachSpec } from "../../../model/schemas.ts";

Deno.test("placement: priority and proceed-on are order (a modify), the rest is placement (a move)", () => {
  const a = AttachSpec.parse({ type: "xdp", iface: "eth0", priority: 50 });
  const b = AttachSpec.parse({ type: "xdp", iface: "eth0", priority: 10, proceedOn: ["pass"] });
  const c = AttachSpec.parse({ type: "xdp", iface: "eth1", priority: 50 });
  assert.equal(samePlacement(a, b), true);
  assert.equal(samePlacement(a, c), false);
  assert.deepEqual(orderChange(a, b), { priority: 10, proceedOn: ["pass"] });
  assert.equal(orderChange(a, a), undefined);
  const tp = AttachSpec.parse({ type: "tracepoint", tracepoint: "syscalls/sys_enter_getpid" });
  assert.equal(orderChange(tp, tp), undefined);
});
