import assert from "node:assert/strict";
import { PolicyFile, policyGateFrom } from "../../../runtime/policy.ts";
import { RuntimeConfig } from "../../../runtime/config.ts";
import { Logger } from "../../../lib/log.ts";
import { TEAM_POLICY, USERS } from "../policy/_cases.ts";

const req = {
  type: "xdp" as const,
  iface: "eth0",
  priority: 100,
  bytecode: { image: "quay.io/team-net/x:v1" },
};

Deno.test("policy file: read at start, read again when it changes; a broken edit keeps the last good policy", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-policy-file-" });
  try {
    const file = `${dir}/policy.yaml`;
    await Deno.writeTextFile(file, JSON.stringify(TEAM_POLICY));
    const log = new Logger("error");
    const f = await PolicyFile.open(file, log);
    assert.ok(f.current().decide(req, USERS.alice).allowed);
    assert.equal(f.current().decide(req, USERS.carol).allowed, false);

    const carol = structuredClone(TEAM_POLICY);
    carol.spec.rules[0].subjects.push({ kind: "User", name: "carol" });
    await new Promise((r) => setTimeout(r, 1100));
    await Deno.writeTextFile(file, JSON.stringify(carol));
    f.current(); // notices the change, reads in the background
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(f.current().decide(req, USERS.carol).allowed, "the edit took effect");

    await new Promise((r) => setTimeout(r, 1100));
    await Deno.writeTextFile(file, JSON.stringify({ ...carol, spec: { rules: [{ name: "x" }] } }));
    f.current();
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(f.current().decide(req, USERS.carol).allowed, "the broken edit is ignored");

    await assert.rejects(PolicyFile.open(file, log), /subjects/, "a broken file fails the start");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("policy gate from the node configuration: none without `policy`; the controller is trusted", async () => {
  const log = new Logger("error");
  assert.equal(await policyGateFrom(RuntimeConfig.parse({}), log), undefined);
  const dir = await Deno.makeTempDir({ prefix: "bpfd-policy-gate-" });
  try {
    await Deno.writeTextFile(`${dir}/p.json`, JSON.stringify(TEAM_POLICY));
    const gate = await policyGateFrom(
      RuntimeConfig.parse({ policy: { source: "file", file: `${dir}/p.json` } }),
      log,
    );
    assert.ok(gate!.trusts("system:serviceaccount:bpfd:bpfd-controller"));
    assert.equal(gate!.trusts("alice"), false);
    assert.ok(gate!.current().decide(req, USERS.alice).allowed);
    await gate!.stop();
    assert.throws(() => RuntimeConfig.parse({ policy: { source: "file" } }), /file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("policy gate from the cluster: without an API server the node goes on after 10 s with nothing new allowed, and stop() ends the retries", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-policy-kube-" });
  const consoleError = console.error;
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close(); // nothing listens there now: every list is refused
  try {
    await Deno.writeTextFile(
      `${dir}/kubeconfig`,
      JSON.stringify({
        clusters: [{ name: "c", cluster: { server: `https://127.0.0.1:${port}` } }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    const lines: string[] = [];
    console.error = (line: string) => void lines.push(line); // the Logger's output (and log.with()'s)
    const started = Date.now();
    const gate = await policyGateFrom(
      RuntimeConfig.parse({ policy: { source: "kubernetes", kubeconfig: `${dir}/kubeconfig` } }),
      new Logger("info"),
    );
    assert.ok(Date.now() - started >= 9_900, "it waited for the first list");
    assert.equal(gate!.current().decide(req, USERS.alice).allowed, false, "the empty policy allows nothing");
    assert.ok(lines.filter((l) => l.includes("BpfPolicy watch failed")).length >= 5, "retried every second");
    assert.ok(lines.some((l) => l.includes('"msg":"BpfPolicy not listed yet')));
    const stopping = Date.now();
    await gate!.stop();
    assert.ok(Date.now() - stopping < 1000, "stop() ended the retries");
  } finally {
    console.error = consoleError;
    await Deno.remove(dir, { recursive: true });
  }
});
