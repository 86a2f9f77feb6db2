import assert from "node:assert/strict";
import { compilePolicy, type PolicyRequest } from "../../../policy/evaluate.ts";
import { configRequest } from "../../../policy/config.ts";
import { defaultPolicy } from "../../../policy/default.ts";
import { BpfPolicy } from "../../../model/policy.ts";
import { CASES, TEAM_POLICY, USERS } from "./_cases.ts";

Deno.test("policy table: every case allowed or refused with the rule and the field it names", () => {
  const policy = compilePolicy([TEAM_POLICY]);
  for (const c of CASES) {
    const d = policy.decide(configRequest(c.spec as never), USERS[c.as]);
    assert.equal(d.allowed, c.allowed, `${c.name}: ${d.allowed ? d.rule : d.message}`);
    assert.equal(d.rule, c.rule, `${c.name}: rule`);
    if (!d.allowed) {
      assert.equal(d.field, c.field, `${c.name}: field (${d.message})`);
      if (!c.rule) continue;
      assert.match(d.message, new RegExp(c.rule), `${c.name}: the message names the rule`);
      assert.match(d.message, new RegExp(c.field!.replace(/[[\]./]/g, "\\$&")), `${c.name}: names the field`);
    }
  }
});

Deno.test("policy: the table's policy and the default policy pass the schema", () => {
  assert.ok(BpfPolicy.safeParse(TEAM_POLICY).success);
  assert.ok(BpfPolicy.safeParse(defaultPolicy()).success);
});

Deno.test("default policy: admins do everything; others only network types at 100-1000, no paths", () => {
  const p = compilePolicy([defaultPolicy()]);
  const admin = { user: "root-ish", groups: ["bpfd-admins"] };
  const dev = { user: "dev", groups: ["system:authenticated"] };
  const img = { image: "quay.io/x/y:v1" };
  assert.ok(p.decide({ type: "kprobe", fnName: "vfs_read", bytecode: img }, admin).allowed);
  assert.ok(p.decide({ type: "xdp", iface: "eth0", priority: 0, bytecode: { path: "/x.o" } }, admin).allowed);
  assert.ok(
    p.decide({ type: "xdp", iface: "eth0", priority: 0, bytecode: img }, { user: "uid:0", groups: [] })
      .allowed,
  );
  assert.ok(p.decide({ type: "tc", iface: "eth0", priority: 100, bytecode: img }, dev).allowed);
  const low = p.decide({ type: "xdp", iface: "eth0", priority: 99, bytecode: img }, dev);
  assert.ok(!low.allowed && low.field === "spec.priority" && low.rule === "bpfd-default/network-above-100");
  const trace = p.decide({ type: "tracepoint", tracepoint: "syscalls/sys_enter_openat", bytecode: img }, dev);
  assert.ok(!trace.allowed && trace.field === "spec.type");
  const path = p.decide({ type: "xdp", iface: "eth0", priority: 500, bytecode: { path: "/opt/x.o" } }, dev);
  assert.ok(!path.allowed && path.field === "spec.bytecode.path");
  const nobody = p.decide({ type: "xdp", bytecode: img }, { user: "anonymous", groups: [] });
  assert.ok(!nobody.allowed && nobody.fact === "subject");
});

Deno.test("policy: union of allows across objects, and a deny in any object wins", () => {
  const allowTc: BpfPolicy = {
    ...TEAM_POLICY,
    metadata: { name: "more" },
    spec: {
      rules: [{ name: "alice-tc", subjects: [{ kind: "User", name: "alice" }], programTypes: ["TC"] }],
    },
  };
  const denyAll: BpfPolicy = {
    ...TEAM_POLICY,
    metadata: { name: "freeze" },
    spec: { rules: [{ name: "alice-off", effect: "Deny", subjects: [{ kind: "User", name: "alice" }] }] },
  };
  const req: PolicyRequest = { type: "tc", iface: "eth1", priority: 1, bytecode: { image: "docker.io/x" } };
  assert.equal(compilePolicy([TEAM_POLICY]).decide(req, USERS.alice).allowed, false);
  const d = compilePolicy([TEAM_POLICY, allowTc]).decide(req, USERS.alice);
  assert.ok(d.allowed && d.rule === "more/alice-tc");
  const denied = compilePolicy([TEAM_POLICY, allowTc, denyAll]).decide(req, USERS.alice);
  assert.ok(
    !denied.allowed && denied.rule === "freeze/alice-off" && denied.fact === "subject",
    JSON.stringify(denied),
  );
});

Deno.test("policy: node-side requests decide what is known; the signer once the image is pulled", () => {
  const key =
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAAAA\n-----END PUBLIC KEY-----";
  const signed: BpfPolicy = {
    ...TEAM_POLICY,
    metadata: { name: "signed" },
    spec: {
      rules: [{
        name: "ci",
        subjects: [{ kind: "User", name: "ci" }],
        signers: [{
          identity: "/https://github.com/org/.*/",
          issuer: "https://token.actions.githubusercontent.com",
        }, {
          key,
        }],
        bytecodePaths: ["/opt"],
      }],
    },
  };
  const p = compilePolicy([signed]);
  const ci = { user: "ci", groups: [] };
  const image = { image: "quay.io/org/x:v1" };
  assert.ok(p.decide({ bytecode: image }, ci).allowed, "before the pull the signer is not known yet");
  assert.equal(p.decide({ bytecode: image, signer: null }, ci).allowed, false, "unsigned");
  const by = "https://github.com/org/repo/.github/workflows/ci.yml@refs/heads/main " +
    "(issuer https://token.actions.githubusercontent.com)";
  assert.ok(p.decide({ bytecode: image, signer: by }, ci).allowed);
  assert.equal(p.decide({ bytecode: image, signer: by.replace("/org/", "/evil/") }, ci).allowed, false);
  assert.equal(p.decide({ bytecode: image, signer: "key sha256:00" }, ci).allowed, false);
  const path = p.decide({ bytecode: { path: "/opt/x.o" } }, ci);
  assert.ok(!path.allowed && path.fact === "signer", "a path load never satisfies a signer requirement");
});

Deno.test("policy: a broken pattern never allows, and always denies", () => {
  const broken: BpfPolicy = {
    ...TEAM_POLICY,
    metadata: { name: "broken" },
    spec: {
      rules: [
        { name: "allow", subjects: [{ kind: "User", name: "u" }], interfaces: ["/([/"] },
        { name: "deny", effect: "Deny", subjects: [{ kind: "User", name: "v" }], interfaces: ["/([/"] },
        { name: "allow-v", subjects: [{ kind: "User", name: "v" }] },
      ],
    },
  };
  const p = compilePolicy([broken]);
  const req: PolicyRequest = { type: "xdp", iface: "eth0", bytecode: { image: "x" } };
  assert.equal(p.decide(req, { user: "u", groups: [] }).allowed, false);
  const v = p.decide(req, { user: "v", groups: [] });
  assert.ok(!v.allowed && v.rule === "broken/deny");
});
