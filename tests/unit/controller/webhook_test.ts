import assert from "node:assert/strict";
import { webhookApp } from "../../../controller/webhook.ts";
import { compilePolicy } from "../../../policy/evaluate.ts";
import { requesterAnnotation } from "../../../policy/config.ts";
import { Logger } from "../../../lib/log.ts";
import { REQUESTED_BY } from "../../../model/policy.ts";
import { CASES, TEAM_POLICY, USERS } from "../policy/_cases.ts";
import type { EventSpec } from "../../../controller/reconciler.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const events: EventSpec[] = [];
const app = webhookApp({
  policy: () => compilePolicy([TEAM_POLICY]),
  log: new Logger("error"),
  event: (e) => Promise.resolve(void events.push(e)),
  knownSubjects: () =>
    Promise.resolve({ groups: new Set(["team-net"]), serviceAccounts: new Set(["monitoring/agent"]) }),
});

async function admit(path: string, request: Json): Promise<Json> {
  const res = await app.request(path, {
    method: "POST",
    body: JSON.stringify({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      request: { uid: "u1", ...request },
    }),
  });
  assert.equal(res.status, 200);
  return (await res.json()).response;
}

const config = (name: string, spec: unknown, annotations?: Record<string, string>) => ({
  apiVersion: "bpfd.io/v1alpha1",
  kind: "BpfProgramConfig",
  metadata: { name, ...(annotations ? { annotations } : {}) },
  spec,
});

function applyPatch(obj: Json, patch: Json[]): Json {
  const out = structuredClone(obj);
  for (const p of patch) {
    if (p.path === "/metadata/annotations") out.metadata.annotations = p.value;
    else if (p.op === "add") out.metadata.annotations[REQUESTED_BY] = p.value;
    else delete out.metadata.annotations[REQUESTED_BY];
  }
  return out;
}

/** What the API server does: mutate, then validate the mutated object. */
async function create(obj: Json, userInfo: Json): Promise<Json> {
  const m = await admit("/mutate/bpfprogramconfigs", { operation: "CREATE", object: obj, userInfo });
  const mutated = m.patch ? applyPatch(obj, JSON.parse(atob(m.patch))) : obj;
  return await admit("/validate/bpfprogramconfigs", { operation: "CREATE", object: mutated, userInfo });
}

Deno.test("webhook: agrees with the evaluator on the policy table, naming rule and field", async () => {
  for (const c of CASES) {
    const u = USERS[c.as];
    const r = await create(config(c.name, c.spec), { username: u.user, groups: u.groups });
    assert.equal(r.allowed, c.allowed, `${c.name}: ${JSON.stringify(r.status)}`);
    if (!c.allowed) {
      assert.equal(r.status.code, 403);
      if (c.rule) {
        assert.match(r.status.message, new RegExp(`${c.rule}.*${c.field!.replace(/[[\]./]/g, "\\$&")}`));
      }
    }
  }
  assert.ok(events.some((e) => e.reason === "PolicyDenied" && e.name === "alice-xdp-eth0-10"));
});

Deno.test("webhook: requested-by is stamped, kept on metadata-only updates, refused when forged", async () => {
  const alice = { username: "alice", groups: ["system:authenticated"] };
  const spec = CASES[0].spec;
  const stamp = requesterAnnotation({ user: "alice", groups: ["system:authenticated"] });
  const m = await admit("/mutate/bpfprogramconfigs", {
    operation: "CREATE",
    object: config("a", spec),
    userInfo: alice,
  });
  assert.deepEqual(JSON.parse(atob(m.patch)), [{
    op: "add",
    path: "/metadata/annotations",
    value: { [REQUESTED_BY]: stamp },
  }]);
  // A user-set value is overwritten by the mutation...
  const forged = config("a", spec, {
    [REQUESTED_BY]: requesterAnnotation({ user: "admin", groups: ["bpfd-admins"] }),
  });
  const m2 = await admit("/mutate/bpfprogramconfigs", {
    operation: "CREATE",
    object: forged,
    userInfo: alice,
  });
  assert.deepEqual(JSON.parse(atob(m2.patch))[0].value, stamp);
  // ...and refused if it reaches validation unchanged.
  const v = await admit("/validate/bpfprogramconfigs", {
    operation: "CREATE",
    object: forged,
    userInfo: alice,
  });
  assert.equal(v.allowed, false);
  assert.match(v.status.message, /requested-by/);
  // The controller adding a finalizer keeps alice as the requester.
  const stored = config("a", spec, { [REQUESTED_BY]: stamp });
  const controller = { username: "system:serviceaccount:bpfd:bpfd-controller", groups: [] };
  const fin = { ...stored, metadata: { ...stored.metadata, finalizers: ["x"] } };
  const m3 = await admit("/mutate/bpfprogramconfigs", {
    operation: "UPDATE",
    object: fin,
    oldObject: stored,
    userInfo: controller,
  });
  assert.deepEqual(JSON.parse(atob(m3.patch))[0].value, stamp);
  const v3 = await admit("/validate/bpfprogramconfigs", {
    operation: "UPDATE",
    object: fin,
    oldObject: stored,
    userInfo: controller,
  });
  assert.equal(v3.allowed, true);
  // A spec change is checked against whoever makes it: carol may not.
  const carol = { username: "carol", groups: ["system:authenticated"] };
  const changed = config("a", { ...spec, priority: 200 }, { [REQUESTED_BY]: stamp });
  const v4 = await create(changed, carol);
  assert.equal(v4.allowed, false);
});

Deno.test("webhook: a malformed policy is refused naming the field; unknown subjects are warned about", async () => {
  const policy = (rules: Json[]) => ({
    apiVersion: "bpfd.io/v1alpha1",
    kind: "BpfPolicy",
    metadata: { name: "p" },
    spec: { rules },
  });
  const ok = await admit("/validate/bpfpolicies", { operation: "CREATE", object: TEAM_POLICY });
  assert.equal(ok.allowed, true, JSON.stringify(ok));
  const bad = await admit("/validate/bpfpolicies", {
    operation: "CREATE",
    object: policy([{ name: "r", subjects: [{ kind: "ServiceAccount", name: "x" }] }]),
  });
  assert.equal(bad.allowed, false);
  assert.match(bad.status.message, /spec\.rules\[0\]\.subjects\[0\]\.namespace/);
  const regex = await admit("/validate/bpfpolicies", {
    operation: "CREATE",
    object: policy([{ name: "r", subjects: [{ kind: "User", name: "u" }], interfaces: ["eth0", "/([/"] }]),
  });
  assert.equal(regex.allowed, false);
  assert.match(
    regex.status.message,
    /spec\.rules\[0\]\.interfaces\[1\]: \/\(\[\/ is not a valid regular expression/,
  );
  const warned = await admit("/validate/bpfpolicies", {
    operation: "CREATE",
    object: policy([{
      name: "r",
      subjects: [{ kind: "Group", name: "no-such-team" }, {
        kind: "ServiceAccount",
        namespace: "x",
        name: "ghost",
      }],
    }]),
  });
  assert.equal(warned.allowed, true);
  assert.deepEqual(warned.warnings, [
    "rule r: no RoleBinding or ClusterRoleBinding names group no-such-team",
    "rule r: ServiceAccount x/ghost does not exist",
  ]);
});
