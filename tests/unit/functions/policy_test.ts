import assert from "node:assert/strict";
import { actingFor, attachRequest, enforce, enforceAttach, subjectOf } from "../../../functions/_policy.ts";
import type { Ctx } from "../../../functions/_ctx.ts";
import { BpfdError } from "../../../functions/_errors.ts";
import { compilePolicy } from "../../../policy/evaluate.ts";
import { Logger } from "../../../lib/log.ts";
import type { ProgramRecord } from "../../../model/schemas.ts";
import { TEAM_POLICY } from "../policy/_cases.ts";

const policy = compilePolicy([TEAM_POLICY]);
const ctxOf = (user: string, withPolicy = true) =>
  ({
    caller: { user, via: "test", groups: ["system:authenticated"] },
    log: new Logger("error"),
    ...(withPolicy ? { policy: { current: () => policy, trusts: (u: string) => u === "controller" } } : {}),
  }) as unknown as Ctx;

const program = {
  id: 7,
  type: "xdp",
  bytecode: { image: { url: "quay.io/team-net/x:v1", digest: "sha256:00" } },
} as unknown as ProgramRecord;

Deno.test("node policy: attach requests carry the program's type and bytecode; refusals are 403 naming rule and field", () => {
  assert.deepEqual(attachRequest(program, { type: "xdp", iface: "eth0", priority: 100 } as never), {
    type: "xdp",
    bytecode: { image: "quay.io/team-net/x:v1" },
    iface: "eth0",
    priority: 100,
  });
  enforceAttach(ctxOf("alice"), program, { type: "xdp", iface: "eth0", priority: 100 } as never);
  assert.throws(
    () => enforceAttach(ctxOf("alice"), program, { type: "xdp", iface: "eth0", priority: 10 } as never),
    (e: unknown) =>
      e instanceof BpfdError && e.status === 403 && e.code === "policy_denied" &&
      e.details.field === "attach.priority" && e.details.rule === "team/xdp-eth0",
  );
  // No policy: everything is allowed.
  enforce(ctxOf("carol", false), { type: "kprobe" });
});

Deno.test("node policy: only a trusted caller names a requester, whose rules then apply", () => {
  const asAlice = actingFor(ctxOf("controller"), { user: "alice", groups: [] });
  assert.deepEqual(subjectOf(asAlice), { user: "alice", groups: [] });
  enforceAttach(asAlice, program, { type: "xdp", iface: "eth0", priority: 100 } as never);
  assert.throws(
    () => actingFor(ctxOf("bob"), { user: "alice", groups: [] }),
    (e: unknown) =>
      e instanceof BpfdError && e.status === 403 && /bob may not act for another user/.test(e.message),
  );
  assert.equal(actingFor(ctxOf("bob", false), { user: "alice", groups: [] }).policy, undefined);
  assert.deepEqual(subjectOf(ctxOf("bob")), { user: "bob", groups: ["system:authenticated"] });
});
