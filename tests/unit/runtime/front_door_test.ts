import * as assert from "node:assert/strict";
import { Hono } from "hono";
import { browserGuard, hostAllowed, jsonOnly, peerAllowed, peerGuard } from "../../../runtime/front_door.ts";

Deno.test("hostAllowed: the listen address and localhost names; any IP literal only on a wildcard address", () => {
  const loopback = hostAllowed("127.0.0.1", []);
  for (const h of ["127.0.0.1:50052", "localhost", "LOCALHOST:1", "[::1]:50052"]) assert.ok(loopback(h), h);
  for (const h of ["evil.example", "evil.example:50052", "10.0.0.1:50052", "", "a:b:c"]) {
    assert.ok(!loopback(h), h);
  }
  const wildcard = hostAllowed("0.0.0.0", ["node1.cluster.local"]);
  for (const h of ["10.0.0.1:50052", "[fd00::1]:50052", "node1.cluster.local:50052"]) {
    assert.ok(wildcard(h), h);
  }
  assert.ok(!wildcard("rebind.evil.example:50052"));
});

Deno.test("peerAllowed: root, the API group as primary or supplementary group; nobody else", () => {
  assert.ok(peerAllowed({ uid: 0, gid: 0, pid: 1, groups: [] }, undefined));
  assert.ok(peerAllowed({ uid: 1000, gid: 990, pid: 1, groups: [] }, 990));
  assert.ok(peerAllowed({ uid: 1000, gid: 1000, pid: 1, groups: [4, 990] }, 990));
  assert.ok(!peerAllowed({ uid: 1000, gid: 1000, pid: 1, groups: [991] }, 990));
  assert.ok(!peerAllowed({ uid: 1000, gid: 1000, pid: 1, groups: [] }, undefined));
});

Deno.test("front door: Origin 403, foreign Host 421, non-JSON POST 415, strangers on the socket 403", async () => {
  const app = new Hono()
    .use(browserGuard(hostAllowed("127.0.0.1", [])), jsonOnly())
    .post("/v1/functions/list", (c) => c.json({}))
    .get("/healthz", (c) => c.json({ ok: true }));
  const req = (headers: Record<string, string>, method = "POST") =>
    app.request("/v1/functions/list", {
      method,
      headers: { host: "127.0.0.1:50052", ...headers },
      body: "{}",
    });
  assert.equal((await req({ "content-type": "application/json" })).status, 200);
  assert.equal((await req({ "content-type": "application/json", origin: "https://a.example" })).status, 403);
  assert.equal((await req({ "content-type": "application/json", host: "evil.example" })).status, 421);
  assert.equal((await req({ "content-type": "text/plain" })).status, 415);
  assert.equal((await req({})).status, 415);

  const socket = new Hono().use(peerGuard(990, "bpfd-admin")).all("*", (c) => c.json({}));
  const as = (uid: number, path = "/v1/functions/list") =>
    socket.request(path, { method: "POST" }, { peer: { uid, gid: uid, pid: 1, groups: [] } });
  assert.equal((await as(0)).status, 200);
  assert.equal((await as(1000)).status, 403);
  assert.equal((await as(1000, "/healthz")).status, 200);
});
