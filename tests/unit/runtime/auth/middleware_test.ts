import assert from "node:assert/strict";
import { Hono } from "hono";
import { authMiddleware, identityOf } from "../../../../runtime/auth/middleware.ts";
import type { Authenticator, NodeApiVerb } from "../../../../runtime/auth/auth.ts";
import { Logger } from "../../../../lib/log.ts";

/** Token "reader" may only read (verb get); token "admin" may do everything. */
const auth: Authenticator = {
  mode: "test",
  check(token: string | undefined, verb: NodeApiVerb) {
    if (token !== "reader" && token !== "admin") {
      return Promise.resolve({ ok: false, status: 401, reason: "no token" });
    }
    if (token === "reader" && verb !== "get") {
      return Promise.resolve({ ok: false, status: 403, reason: "read only" });
    }
    return Promise.resolve({ ok: true, identity: { user: token, via: "token" }, groups: [] });
  },
};

Deno.test("auth middleware: a reader's identity says it may not load, so views hide global data values", async () => {
  const app = new Hono().use(authMiddleware(auth, () => new Logger("error"), "tls"))
    .post("/v1/functions/:name", (c) => c.json(identityOf(c) ?? null));
  const call = async (name: string, token: string) =>
    await (await app.request(`/v1/functions/${name}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    })).json();
  assert.deepEqual(await call("list", "reader"), { user: "reader", via: "tls token", groups: [] });
  assert.deepEqual(await call("get", "admin"), {
    user: "admin",
    via: "tls token",
    groups: [],
    mayLoad: true,
  });
  // Not on calls that record their caller (loadedBy): they need the load verb anyway.
  assert.deepEqual(await call("load", "admin"), { user: "admin", via: "tls token", groups: [] });
});
