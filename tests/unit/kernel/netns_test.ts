/** Namespace names as attach specs give them, without entering one. */
import assert from "node:assert/strict";
import { netnsPath } from "../../../kernel/netns.ts";

Deno.test("netnsPath: a name is one of /run/netns, a path stays a path, none is the runtime's own", () => {
  assert.equal(netnsPath("blue"), "/run/netns/blue");
  assert.equal(netnsPath("/proc/42/ns/net"), "/proc/42/ns/net");
  assert.equal(netnsPath(undefined), undefined);
  assert.equal(netnsPath(""), undefined);
});
