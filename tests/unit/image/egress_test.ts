// Where a registry may send the client: bearer realms and redirects (image/egress.ts).
import assert from "node:assert/strict";
import { checkRealm, checkRedirect, type EgressRules, isInternalHost } from "../../../image/egress.ts";
import { ImageError } from "../../../image/errors.ts";

const secure: EgressRules = { registry: "registry.corp.com", insecure: false };
const insecure: EgressRules = { registry: "127.0.0.1:5000", insecure: true };

function refused(f: () => unknown, re: RegExp): void {
  assert.throws(f, (e) => {
    assert.ok(e instanceof ImageError);
    assert.equal(e.code, "registry_error");
    assert.match(e.message, re);
    assert.doesNotMatch(e.message, /\/secret-path|token=/, "only the origin is named");
    return true;
  });
}

Deno.test("bearer realm: HTTPS on the registry's host (any port) is followed", () => {
  assert.equal(checkRealm("https://registry.corp.com/token", secure).href, "https://registry.corp.com/token");
  assert.equal(checkRealm("https://REGISTRY.corp.com:8443/auth", secure).port, "8443");
  assert.equal(
    checkRealm("https://auth.docker.io/token", { registry: "docker.io", insecure: false }).host,
    "auth.docker.io",
  );
  assert.equal(
    checkRealm("https://sso.corp.com/token", { ...secure, realmHosts: ["sso.corp.com"] }).host,
    "sso.corp.com",
  );
});

Deno.test("bearer realm: plain HTTP, other hosts and odd URLs are refused", () => {
  refused(
    () => checkRealm("http://registry.corp.com/secret-path", secure),
    /realm http:\/\/registry.corp.com is not HTTPS/,
  );
  refused(
    () => checkRealm("https://169.254.169.254/secret-path", secure),
    /not on the registry's host nor in realmHosts/,
  );
  refused(() => checkRealm("https://registry.corp.com.evil.net/token", secure), /not on the registry's host/);
  refused(() => checkRealm("https://auth.docker.io/token", secure), /not on the registry's host/);
  refused(() => checkRealm("https://u:p@registry.corp.com/token", secure), /credentials/);
  refused(() => checkRealm("file:///etc/passwd", secure), /not on the registry's host/);
  refused(() => checkRealm("not a url", secure), /not a URL/);
  refused(
    () => checkRealm("http://sso.corp.com/token", { ...secure, realmHosts: ["sso.corp.com"] }),
    /not HTTPS/,
  );
});

Deno.test("bearer realm: plain HTTP only on the same host of an insecure registry", () => {
  assert.equal(checkRealm("http://127.0.0.1:5001/token", insecure).port, "5001");
  refused(() => checkRealm("http://localhost:5001/token", insecure), /not on the registry's host/);
  refused(
    () => checkRealm("http://localhost:5001/token", { ...insecure, realmHosts: ["localhost:5001"] }),
    /not HTTPS/,
  );
});

Deno.test("redirects: never HTTPS to HTTP; same origin always; another host only for blobs over HTTPS", () => {
  const from = new URL("https://registry.corp.com/v2/x/blobs/sha256:1");
  const blob = { blob: true };
  assert.equal(
    checkRedirect(from, "/v2/x/blobs/other", { blob: false }, secure).pathname,
    "/v2/x/blobs/other",
  );
  assert.equal(
    checkRedirect(from, "https://storage.example.com/b?sig=1", blob, secure).host,
    "storage.example.com",
  );
  refused(
    () => checkRedirect(from, "http://registry.corp.com/secret-path", blob, secure),
    /from HTTPS to HTTP/,
  );
  refused(() => checkRedirect(from, "http://storage.example.com/", blob, secure), /from HTTPS to HTTP/);
  refused(
    () => checkRedirect(from, "https://storage.example.com/secret-path", { blob: false }, secure),
    /another host .* outside a blob download/,
  );
  refused(() => checkRedirect(from, "https://10.1.2.3/secret-path", blob, secure), /an internal address/);
  refused(() => checkRedirect(from, "https://localhost:9000/", blob, secure), /an internal address/);
  refused(() => checkRedirect(from, "ftp://storage.example.com/", blob, secure), /ftp: URL/);
  refused(() => checkRedirect(from, null, blob, secure), /without Location/);
  refused(() => checkRedirect(from, "https://u:p@storage.example.com/", blob, secure), /credentials/);
  const listed = { ...secure, redirectHosts: ["localhost:9000"] };
  assert.equal(checkRedirect(from, "https://localhost:9000/b", blob, listed).port, "9000");
  refused(() => checkRedirect(from, "https://storage.example.com/", blob, listed), /not in redirectHosts/);
});

Deno.test("redirects: an insecure registry may redirect within itself, to other hosts only over HTTPS", () => {
  const from = new URL("http://127.0.0.1:5000/v2/x/blobs/sha256:1");
  assert.equal(
    checkRedirect(from, "/elsewhere", { blob: true }, insecure).href,
    "http://127.0.0.1:5000/elsewhere",
  );
  refused(() => checkRedirect(from, "http://127.0.0.1:6379/", { blob: true }, insecure), /plain HTTP/);
  refused(() => checkRedirect(from, "http://storage.example.com/", { blob: true }, insecure), /plain HTTP/);
});

Deno.test("internal addresses: loopback, private, link-local, unspecified, ULA and mapped forms", () => {
  for (
    const h of [
      "localhost",
      "a.localhost",
      "127.0.0.1",
      "10.0.0.1",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.1",
      "169.254.169.254",
      "0.0.0.0",
      "100.64.0.1",
      "[::1]",
      "[::]",
      "[fd00::1]",
      "[fe80::1]",
      "[::ffff:127.0.0.1]",
      new URL("http://[::ffff:10.0.0.1]/").hostname,
      new URL("http://2130706433/").hostname,
      new URL("http://0x7f.1/").hostname,
    ]
  ) assert.ok(isInternalHost(h), h);
  for (const h of ["quay.io", "8.8.8.8", "172.32.0.1", "[2001:db8::1]", "192.169.0.1"]) {
    assert.ok(!isInternalHost(h), h);
  }
});
