import assert from "node:assert/strict";
import { serviceAccountOf } from "../../../controller/node_tokens.ts";

const jwt = (claims: unknown) =>
  `e30.${btoa(JSON.stringify(claims)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}.sig`;

Deno.test("node tokens: the ServiceAccount of a token is read from its subject; other tokens name none", () => {
  assert.deepEqual(serviceAccountOf(jwt({ sub: "system:serviceaccount:bpfd:bpfd-controller" })), {
    namespace: "bpfd",
    name: "bpfd-controller",
  });
  assert.equal(serviceAccountOf(jwt({ sub: "alice" })), undefined);
  assert.equal(serviceAccountOf("0123456789abcdef"), undefined);
  assert.equal(serviceAccountOf(""), undefined);
});
