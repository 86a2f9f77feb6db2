import * as assert from "node:assert/strict";
import { openForCaller } from "../../../functions/_files.ts";
import { BpfdError, type Ctx } from "../../../functions/mod.ts";

const ctxOf = (caller: Ctx["caller"]) => ({ caller }) as Ctx;
const statusOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof BpfdError) return [err.status, err.details.field];
    throw err;
  }
  return [200, undefined];
};

Deno.test("openForCaller: unreadable = missing (404) for a local caller; bad kinds of file are a 400 naming the field", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const secret = `${dir}/secret`;
    await Deno.writeTextFile(secret, "x");
    await Deno.chmod(secret, 0o600);
    await Deno.chmod(dir, 0o755);
    const opts = (path: string) => ({ path, field: "bytecode.path", what: "file", maxBytes: 1024 });
    const nobody = ctxOf({ user: "uid:65534", uid: 65534, gid: 65534, via: "unix-socket" });
    const root = ctxOf({ user: "uid:0", uid: 0, gid: 0, via: "unix-socket" });
    const token = ctxOf({ user: "controller", via: "tls token" });
    assert.deepEqual(statusOf(() => openForCaller(nobody, opts(secret))), [404, "bytecode.path"]);
    assert.deepEqual(statusOf(() => openForCaller(nobody, opts(`${dir}/missing`))), [404, "bytecode.path"]);
    assert.deepEqual(statusOf(() => openForCaller(root, opts(secret)).close()), [200, undefined]);
    assert.deepEqual(statusOf(() => openForCaller(token, opts(secret)).close()), [200, undefined]);
    assert.deepEqual(statusOf(() => openForCaller(root, opts(dir))), [400, "bytecode.path"]);
    assert.deepEqual(statusOf(() => openForCaller(root, opts("/dev/null"))), [400, "bytecode.path"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
