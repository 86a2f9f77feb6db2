// The image allow-list matches on host and path boundaries, tags and digests exactly.
import assert from "node:assert/strict";
import {
  allowed,
  allowedByName,
  hasDigestEntries,
  parseAllowEntry,
  parseAllowList,
} from "../../../image/allow.ts";
import { ImageError } from "../../../image/errors.ts";
import { parseReference } from "../../../image/reference.ts";

const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;

function admits(entries: string[], url: string, digests: string[] = []): boolean {
  let ref;
  try {
    ref = parseReference(url);
  } catch (e) {
    assert.ok(e instanceof ImageError && e.code === "bad_reference");
    return false; // a reference that does not parse is never pulled, let alone admitted
  }
  return allowed(parseAllowList(entries), ref, digests);
}

Deno.test("allow-list: a registry entry admits that host only, not a longer host nor another port", () => {
  const allow = ["registry.corp.com"];
  assert.ok(admits(allow, "registry.corp.com/team/img:v1"));
  assert.ok(admits(allow, "REGISTRY.corp.com/img"), "host names are case-insensitive");
  assert.ok(!admits(allow, "registry.corp.com.evil.net/team/img:v1"));
  assert.ok(!admits(allow, "evilregistry.corp.com/img"));
  assert.ok(!admits(allow, "registry.corp.com:5000/img"));
  assert.ok(!admits(allow, "registry.corp.com/../x"));
  assert.ok(!admits(allow, "registry.corp.co/img"));
});

Deno.test("allow-list: a repository entry admits whole path components below it", () => {
  for (const entry of ["registry.corp.com/team", "registry.corp.com/team/"]) {
    assert.ok(admits([entry], "registry.corp.com/team/img"), entry);
    assert.ok(admits([entry], "registry.corp.com/team/sub/img:v2"), entry);
    assert.ok(admits([entry], "registry.corp.com/team:v1"), entry);
    assert.ok(!admits([entry], "registry.corp.com/teamevil"), entry);
    assert.ok(!admits([entry], "registry.corp.com/teamevil/img"), entry);
    assert.ok(!admits([entry], "registry.corp.com/other/team/img"), entry);
    assert.ok(!admits([entry], "registry.corp.com.evil.net/team/img"), entry);
  }
});

Deno.test("allow-list: tags and digests in entries match exactly; bare digests admit any name", () => {
  assert.ok(admits(["quay.io/x/img:v1"], "quay.io/x/img:v1"));
  assert.ok(!admits(["quay.io/x/img:v1"], "quay.io/x/img:v10"));
  assert.ok(!admits(["quay.io/x/img:v1"], "quay.io/x/img/sub:v1"));
  assert.ok(admits([`quay.io/x/img@${D1}`], "quay.io/x/img:v1", [D1]));
  assert.ok(!admits([`quay.io/x/img@${D1}`], "quay.io/x/other:v1", [D1]));
  assert.ok(!admits([`quay.io/x/img@${D1}`], "quay.io/x/img:v1", [D2]));
  assert.ok(admits([D1], "anywhere.io/y:v1", [D2, D1]), "the index digest counts too");
  assert.ok(!admits([D1], "anywhere.io/y:v1", [D2]));
  assert.ok(admits([], "anywhere.io/y:v1"), "an empty list admits everything");
  assert.ok(admits(["docker.io/library/"], "xdp_pass"));
  assert.ok(!admits(["docker.io/bpfd"], "xdp_pass"));
});

Deno.test("allow-list: names alone decide unless a digest entry could still admit", () => {
  const ref = parseReference("quay.io/x/img:v1");
  assert.ok(!allowedByName(parseAllowList(["quay.io/y"]), ref));
  assert.ok(!hasDigestEntries(parseAllowList(["quay.io/y"])));
  assert.ok(hasDigestEntries(parseAllowList(["quay.io/y", D1])));
  assert.ok(hasDigestEntries(parseAllowList([`quay.io/x/img@${D1}`])));
  assert.ok(!allowedByName(parseAllowList([`quay.io/x/img@${D1}`]), ref), "needs the digest");
});

Deno.test("allow-list: malformed entries are configuration errors", () => {
  for (
    const entry of [
      "team/img",
      "xdp_pass",
      "registry.corp.com/../x",
      "registry.corp.com/Team",
      "registry.corp.com/x@sha256:12",
      "registry.corp.com:v1",
      "registry.corp.com/x:bad tag",
      "sha256:xyz",
      "",
    ]
  ) {
    assert.throws(() => parseAllowEntry(entry), (e) => {
      assert.ok(e instanceof ImageError, entry);
      assert.equal(e.code, "bad_config");
      assert.equal(e.field, "allow");
      return true;
    }, entry);
  }
  assert.deepEqual(parseAllowEntry("localhost:5000"), {
    registry: "localhost:5000",
    repository: undefined,
    tag: undefined,
    digest: undefined,
  });
});
