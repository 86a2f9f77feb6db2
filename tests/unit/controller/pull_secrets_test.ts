import assert from "node:assert/strict";
import { dockerConfigOf, PullSecretError, PullSecrets } from "../../../controller/pull_secrets.ts";

Deno.test("pull secrets: .dockerconfigjson decoded; missing or not base64 is a clear PullSecretError", () => {
  const json = '{"auths":{"127.0.0.1:5000":{"auth":"dTpw"}}}';
  assert.equal(dockerConfigOf({ data: { ".dockerconfigjson": btoa(json) } }, "bpfd/regcred"), json);
  assert.throws(
    () => dockerConfigOf({ type: "Opaque", data: { password: "eA==" } }, "bpfd/regcred"),
    (e: unknown) =>
      e instanceof PullSecretError && /bpfd\/regcred has no \.dockerconfigjson \(type Opaque/.test(e.message),
  );
  assert.throws(
    () => dockerConfigOf({ data: { ".dockerconfigjson": "%%%" } }, "x"),
    (e: unknown) => e instanceof PullSecretError && /not base64/.test(e.message),
  );
});

Deno.test("pull secrets: each Secret read once while fresh; a failed read is not cached", async () => {
  let reads = 0, fail = true;
  const secrets = new PullSecrets((ref) => {
    reads++;
    return fail
      ? Promise.reject(new PullSecretError(`pull secret ${ref.name} not found`))
      : Promise.resolve("{}");
  });
  await assert.rejects(secrets.get({ name: "s" }), /not found/);
  fail = false;
  assert.equal(await secrets.get({ name: "s" }), "{}");
  assert.equal(await secrets.get({ name: "s" }), "{}");
  assert.equal(reads, 2);
});
