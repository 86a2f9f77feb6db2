// Registry credentials from a docker config.json or a pull secret: forms, normalization, and errors that
// never quote the document.
import assert from "node:assert/strict";
import { lookupCredential, parseDockerConfig } from "../../../image/credentials.ts";
import { ImageError } from "../../../image/errors.ts";

const SECRET = "s3cr3t-Fragment-4242";

Deno.test("docker config: auth, username/password and identitytoken entries; hosts normalized", () => {
  const map = parseDockerConfig(JSON.stringify({
    auths: {
      "https://index.docker.io/v1/": { auth: btoa("hub:pw:with:colons") },
      "quay.io": { username: "q", password: "p" },
      "HTTPS://Registry.Corp.COM/v2/": { identitytoken: "refresh" },
      "empty.io": {},
    },
  }));
  assert.deepEqual(lookupCredential(map, "docker.io"), { username: "hub", password: "pw:with:colons" });
  assert.deepEqual(lookupCredential(map, "quay.io"), { username: "q", password: "p" });
  assert.deepEqual(lookupCredential(map, "registry.corp.com"), { username: "<token>", password: "refresh" });
  assert.equal(lookupCredential(map, "empty.io"), undefined);
  assert.equal(lookupCredential(map, "other.io"), undefined);
  assert.equal(lookupCredential(undefined, "quay.io"), undefined);
});

Deno.test("docker config: a pull secret's older .dockercfg (the bare auths map) is read too", () => {
  const map = parseDockerConfig(JSON.stringify({ "quay.io": { auth: btoa("a:b") } }));
  assert.deepEqual(lookupCredential(map, "quay.io"), { username: "a", password: "b" });
});

Deno.test("docker config: errors name the field and entry, never a fragment of the document", () => {
  const cases: [string, RegExp][] = [
    [`{"auths": {"quay.io": {"auth": "${SECRET}`, /^auth\.dockerConfigJson: not JSON$/],
    [`${SECRET}`, /not JSON/],
    [JSON.stringify([SECRET]), /expected an object with "auths"/],
    [JSON.stringify({ auths: [SECRET] }), /"auths" must be an object/],
    [JSON.stringify({ auths: { [SECRET]: SECRET } }), /auths entry 1 must be an object/],
    [
      JSON.stringify({ auths: { ok: {}, [SECRET]: { auth: `${SECRET}!!` } } }),
      /auths entry 2: auth is not base64/,
    ],
    [JSON.stringify({ auths: { [SECRET]: { auth: btoa(SECRET) } } }), /must be base64 of username:password/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseDockerConfig(text, "auth.dockerConfigJson"), (e) => {
      assert.ok(e instanceof ImageError);
      assert.equal(e.code, "bad_auth");
      assert.equal(e.field, "auth.dockerConfigJson");
      assert.match(e.message, re);
      assert.ok(!e.message.includes(SECRET.slice(0, 6)), `message quotes the document: ${e.message}`);
      assert.ok(!JSON.stringify(e).includes(SECRET.slice(0, 6)));
      return true;
    });
  }
});
