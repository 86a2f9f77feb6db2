import assert from "node:assert/strict";
import {
  certificateFacts,
  issueCa,
  keyAndRequest,
  openssl,
  requestSubject,
  signServing,
} from "../../../lib/pki.ts";

Deno.test("pki: a request's name is read only when its signature holds; the certificate has exactly the SANs given", async () => {
  const ca = await issueCa("test-ca", 2);
  const { key, csr } = await keyAndRequest("system:bpfd:node:node-a");
  assert.equal(await requestSubject(csr), "system:bpfd:node:node-a");
  const cert = await signServing(csr, ca, { ips: ["10.0.0.5"], dns: ["node-a"] }, 1);
  const facts = await certificateFacts(cert);
  assert.deepEqual([...facts.sans].sort(), ["10.0.0.5", "node-a"]);
  assert.ok(facts.notAfter > Date.now() && facts.notAfter < Date.now() + 2 * 86400_000);
  // The certificate is for the request's key, and the CA vouches for it.
  const pub = await openssl(["pkey", "-pubout"], key);
  assert.equal(await openssl(["x509", "-noout", "-pubkey"], cert), pub);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ca.crt`, ca.cert);
    assert.match(await openssl(["verify", "-CAfile", `${dir}/ca.crt`], cert), /OK/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // A request whose body was changed after signing is refused.
  const der = atob(csr.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""));
  const at = der.indexOf("node-a");
  const tampered = der.slice(0, at) + "node-b" + der.slice(at + 6);
  const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${btoa(tampered)}\n-----END CERTIFICATE REQUEST-----\n`;
  await assert.rejects(requestSubject(pem));
});
