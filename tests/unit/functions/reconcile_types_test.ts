/** BpfProgramConfig's raw tracepoint, tp_btf and perf_event types as the node runtime's attach specs. */
import assert from "node:assert/strict";
import { attachFor, loadFor } from "../../../functions/reconcile.ts";
import { AttachSpec } from "../../../model/schemas.ts";
import { crdSpelling } from "../../../model/policy.ts";

// deno-lint-ignore no-explicit-any
const spec = (type: string, attachpoint: Record<string, unknown>): any => ({
  name: "p",
  type,
  bytecode: { path: "/x.o" },
  nodeselector: {},
  attachpoint,
});

Deno.test("reconcile: RawTracepoint, TpBtf and PerfEvent become valid attach specs; TpBtf's function is its load target", () => {
  const raw = attachFor(spec("RawTracepoint", { rawtracepoint: "sys_enter" }));
  assert.deepEqual(raw, { type: "raw_tracepoint", tracepoint: "sys_enter" });
  assert.deepEqual(attachFor(spec("TpBtf", { functionname: "sched_switch" })), { type: "tp_btf" });
  assert.equal(loadFor(spec("TpBtf", { functionname: "sched_switch" })).programs?.[0].fnName, "sched_switch");
  const perf = attachFor(spec("PerfEvent", { event: "cpu-clock", frequency: 99, cpu: 1 }));
  assert.deepEqual(perf, { type: "perf_event", event: "cpu-clock", frequency: 99, cpu: 1 });
  for (const a of [raw, perf]) assert.ok(AttachSpec.safeParse(a).success, JSON.stringify(a));
  assert.ok(!AttachSpec.safeParse({ type: "perf_event", frequency: 9, period: 9 }).success, "not both");
});

Deno.test("policy spelling: the new types are spelled as the CRDs spell them", () => {
  assert.deepEqual(
    ["raw_tracepoint", "tp_btf", "perf_event", "xdp", "tracepoint"].map((t) => crdSpelling(t as never)),
    ["RawTracepoint", "TpBtf", "PerfEvent", "XDP", "Tracepoint"],
  );
});
