import assert from "node:assert/strict";
import { PolicyDenied, PolicyGate } from "../../../controller/policy_gate.ts";
import type { NodeCaller } from "../../../controller/node_client.ts";
import type { EventSpec, Store } from "../../../controller/reconciler.ts";
import type { ReconcileInput } from "../../../crds/reconcile.ts";
import { compilePolicy } from "../../../policy/evaluate.ts";
import { Logger } from "../../../lib/log.ts";
import { CASES, TEAM_POLICY } from "../policy/_cases.ts";

const spec = (priority: number) => ({ ...CASES[0].spec, priority }) as never;
const alice = JSON.stringify({ user: "alice", groups: [] });

Deno.test("controller policy gate: requesters go to the nodes; forbidden configs only where not loaded yet", async () => {
  const sent: ReconcileInput[] = [];
  const inner: NodeCaller = {
    reconcile(_node, input) {
      sent.push(input);
      return Promise.resolve({ name: input.name, programs: {}, changed: false, actions: [] });
    },
  };

  let cfg = { metadata: { name: "c", annotations: { "bpfd.io/requested-by": alice } }, spec: spec(100) };
  const loaded = new Set<string>();
  const events: EventSpec[] = [];
  const store = {
    config: () => cfg,
    program: (name: string) => ({ spec: { programs: loaded.has(name) ? { "1": {} } : {} } }),
  } as unknown as Store;
  const gate = new PolicyGate(inner, {
    policy: () => compilePolicy([TEAM_POLICY]),
    store: () => store,
    log: () => new Logger("error"),
    event: (e) => Promise.resolve(void events.push(e)),
  });
  const node = { name: "n1", labels: {} };
  await gate.reconcile(node, { name: "c-n1", config: "c", spec: spec(100) });
  assert.deepEqual(sent[0].requester, { user: "alice", groups: [] });
  assert.equal(gate.condition(cfg as never).status, "True");

  cfg = { ...cfg, spec: spec(10) };
  loaded.add("c-n1");
  await gate.reconcile(node, { name: "c-n1", config: "c", spec: spec(10) });
  assert.equal(sent.length, 2, "a node that has it is still called (what is loaded stays)");
  await assert.rejects(
    gate.reconcile({ name: "n2", labels: {} }, { name: "c-n2", config: "c", spec: spec(10) }),
    (e: unknown) => e instanceof PolicyDenied && /team\/xdp-eth0.*spec\.priority/.test(e.message),
  );
  assert.equal(sent.length, 2, "a new node is not called");
  const c = gate.condition(cfg as never);
  assert.equal(c.status, "False");
  assert.equal(c.reason, "PolicyDenied");
  assert.equal(events.filter((e) => e.reason === "PolicyDenied").length, 1, "one Event per new refusal");

  // Unloading is never refused; a config without a requester is.
  await gate.reconcile(node, { name: "c-n1", spec: null });
  cfg = { metadata: { name: "c", annotations: {} as never }, spec: spec(100) } as never;
  assert.match(gate.condition(cfg as never).message, /requested-by/);
});
