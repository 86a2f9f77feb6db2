import assert from "node:assert/strict";
import { CASES, TEAM_POLICY, USERS } from "../policy/_cases.ts";

const main = new URL("../../../cli/main.ts", import.meta.url).pathname;

async function check(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, "policy", "check", ...args],
  })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("bpfd policy check: agrees with the policy table, one verdict per config, exit 1 on a refusal", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-policy-cli-" });
  try {
    await Deno.writeTextFile(`${dir}/policy.json`, JSON.stringify(TEAM_POLICY));
    for (const [as, u] of Object.entries(USERS)) {
      const mine = CASES.filter((c) => c.as === as);
      const docs = mine.map((c) =>
        JSON.stringify({
          apiVersion: "bpfd.io/v1alpha1",
          kind: "BpfProgramConfig",
          metadata: { name: c.name },
          spec: c.spec,
        })
      );
      await Deno.writeTextFile(`${dir}/${as}.yaml`, docs.join("\n---\n"));
      const groups = u.groups.flatMap((g) => ["--as-group", g]);
      const r = await check([
        "--as",
        u.user,
        ...groups,
        "-f",
        `${dir}/${as}.yaml`,
        "--policy",
        `${dir}/policy.json`,
      ]);
      const lines = r.stdout.trim().split("\n");
      assert.equal(lines.length, mine.length, r.stdout + r.stderr);
      mine.forEach((c, i) => {
        assert.ok(
          lines[i].startsWith(`${c.allowed ? "allowed" : "refused"} ${c.name}`),
          `${c.name}: ${lines[i]}`,
        );
        if (c.rule) assert.ok(lines[i].includes(c.rule), `${c.name} names ${c.rule}: ${lines[i]}`);
        if (c.field) assert.ok(lines[i].includes(`refused ${c.name}: ${c.field}:`), `${c.name}: ${lines[i]}`);
      });
      assert.equal(r.code, mine.every((c) => c.allowed) ? 0 : 1);
    }
    const usage = await check(["-f", `${dir}/alice.yaml`]);
    assert.equal(usage.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
