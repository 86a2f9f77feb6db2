// Image references without a registry: parsing, normalization, digests, tags and the default registry.
import assert from "node:assert/strict";
import { ImageError } from "../../../image/errors.ts";
import { formatReference, parseReference, registryHost } from "../../../image/reference.ts";

const DIGEST = `sha256:${"ab".repeat(32)}`;

function refused(url: string, re: RegExp): void {
  assert.throws(() => parseReference(url), (e) => {
    assert.ok(e instanceof ImageError);
    assert.equal(e.code, "bad_reference");
    assert.equal(e.field, "url");
    assert.match(e.message, re);
    return true;
  });
}

Deno.test("image reference: a name without a registry is on Docker Hub, one component under library/", () => {
  assert.deepEqual(parseReference("xdp_pass"), {
    registry: "docker.io",
    repository: "library/xdp_pass",
    tag: "latest",
    digest: undefined,
  });
  assert.deepEqual(parseReference("bpfd/xdp_pass:v1").repository, "bpfd/xdp_pass");
  assert.equal(parseReference("bpfd/xdp_pass:v1").registry, "docker.io");
  assert.equal(registryHost("docker.io"), "registry-1.docker.io");
  assert.equal(registryHost("quay.io"), "quay.io");
});

Deno.test("image reference: a first component with a dot, a port or localhost is the registry", () => {
  for (
    const [url, registry, repository] of [
      ["quay.io/bpfd-bytecode/xdp_pass:latest", "quay.io", "bpfd-bytecode/xdp_pass"],
      ["127.0.0.1:5000/x/y", "127.0.0.1:5000", "x/y"],
      ["localhost/x", "localhost", "x"],
      ["localhost:5000/x", "localhost:5000", "x"],
      ["[::1]:5000/x", "[::1]:5000", "x"],
    ]
  ) {
    const r = parseReference(url);
    assert.deepEqual([r.registry, r.repository], [registry, repository], url);
  }
});

Deno.test("image reference: tags default to latest; a digest alone has no tag; both may be given", () => {
  assert.equal(parseReference("quay.io/x/y").tag, "latest");
  const byDigest = parseReference(`quay.io/x/y@${DIGEST}`);
  assert.deepEqual([byDigest.tag, byDigest.digest], [undefined, DIGEST]);
  const both = parseReference(`quay.io/x/y:v1@${DIGEST}`);
  assert.deepEqual([both.tag, both.digest], ["v1", DIGEST]);
  assert.equal(formatReference(both), `quay.io/x/y:v1@${DIGEST}`);
  assert.equal(formatReference(parseReference("xdp_pass")), "docker.io/library/xdp_pass:latest");
});

Deno.test("image reference: bad input names what is wrong", () => {
  refused("https://quay.io/x:y", /no scheme/);
  refused("quay.io/Upper/Case", /repository "Upper\/Case" is not valid/);
  refused("quay.io/x:bad tag", /white space/);
  refused("quay.io/x@sha256:1234", /digest "sha256:1234"/);
  refused(`quay.io/x@sha512:${"a".repeat(128)}`, /digest/);
  refused(`quay.io/x:${"t".repeat(200)}`, /tag/);
  refused("quay.io/../x", /not valid/);
  refused("quay.io/x//y", /not valid/);
  refused(":v1", /empty/);
  refused(`quay.io/${"a".repeat(300)}`, /longer than 255/);
  refused("x".repeat(5000), /longer than 4096/);
  refused("bad_host.io:port/x", /not a host\[:port\]|not valid/);
});
