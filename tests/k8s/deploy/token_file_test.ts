// Standalone mode's static token file, and the pieces of the node API's authorization that need no API
// server: the token file format, the verb of each function, the configuration's checks. The runtime
// process test serves TLS with `auth.mode: tokenFile` and shows the identity from the file on the program.
import assert from "node:assert/strict";
import { parseTokenFile, verbFor } from "../../../runtime/auth/auth.ts";
import { RuntimeConfig } from "../../../runtime/config.ts";
import { bytecodePath } from "../../_runtime.ts";
import { makeNodeTls, SecureRuntime } from "./_secure.ts";

Deno.test("token file: kube-apiserver's format; bad lines are named", () => {
  const t = parseTokenFile(
    `# comment\n0123456789abcdef0123,ops,uid-1,"team-a,team-b"\n\nfedcba9876543210fedc,ci\n`,
    "tokens.csv",
  );
  assert.deepEqual(t, [
    { token: "0123456789abcdef0123", user: "ops", uid: "uid-1", groups: ["team-a", "team-b"] },
    { token: "fedcba9876543210fedc", user: "ci", uid: undefined, groups: [] },
  ]);
  assert.throws(() => parseTokenFile("onlytoken0123456789\n", "f"), /f:1: needs at least token,user/);
  assert.throws(() => parseTokenFile("# x\nshort,user\n", "f"), /f:2: the token is shorter than 16/);
  assert.throws(() => parseTokenFile("# nothing\n", "f"), /f: no tokens/);
});

Deno.test("verbs: list and get read, everything else creates", () => {
  assert.equal(verbFor("POST", "list"), "get");
  assert.equal(verbFor("POST", "get"), "get");
  assert.equal(verbFor("GET", undefined), "get");
  for (const fn of ["load", "attach", "detach", "unload", "modify", "reconcile", "pull", "nosuch"]) {
    assert.equal(verbFor("POST", fn), "create", fn);
  }
});

Deno.test("config: auth and tls are checked, naming the field", () => {
  const bad = RuntimeConfig.safeParse({ auth: { mode: "tokenFile" } });
  assert.equal(bad.success, false);
  assert.deepEqual(bad.error!.issues[0].path, ["auth", "tokenFile"]);
  const unknown = RuntimeConfig.safeParse({ auth: { mode: "magic" } });
  assert.deepEqual(unknown.error!.issues[0].path, ["auth", "mode"]);
  const tls = RuntimeConfig.safeParse({ tls: { certFile: "/c" } });
  assert.deepEqual(tls.error!.issues[0].path, ["tls", "keyFile"]);
  assert.equal(RuntimeConfig.parse({}).auth, undefined, "the embedded default has no auth (loopback only)");
});

Deno.test("standalone: a runtime with a static token file over TLS", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-tokfile-" });
  let rt: SecureRuntime | undefined;
  const token = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
  try {
    await Deno.writeTextFile(`${dir}/tokens.csv`, `${token},ops-admin,1,"ops"\n`, { mode: 0o600 });
    rt = await SecureRuntime.start(dir, await makeNodeTls(dir), {
      mode: "tokenFile",
      tokenFile: `${dir}/tokens.csv`,
    });
    const none = await rt.call("list", {});
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, "unauthenticated");
    assert.equal((await rt.call("list", {}, "b1b2c3d4e5f60718293a4b5c6d7e8f90")).status, 401);
    const loaded = await rt.call("load", {
      bytecode: { path: bytecodePath("xdp_counter") },
      programs: [{ name: "xdp_counter", type: "xdp" }],
      metadata: { ticket: "OPS-1" },
    }, token);
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
    const id = loaded.body.programs[0].id;
    const got = await rt.call("get", { programId: id }, token);
    assert.deepEqual(got.body.program.loadedBy, { user: "ops-admin", via: "tls token", groups: ["ops"] });
    assert.equal(got.body.program.metadata.ticket, "OPS-1");
    assert.equal((await rt.call("unload", { programId: id }, token)).status, 200);
  } finally {
    await rt?.destroy(token);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
