// A node's bpffs for map-volume tests: a bpffs mounted in a temp directory with one map pinned in it.
import assert from "node:assert/strict";
import { run } from "../../lib/command.ts";

/**
 * Mounts a bpffs at `${dir}/node` and pins a one-entry array map (4-byte key, 8-byte value) named `name`
 * there with bpftool; returns the pin's path. The caller unmounts `${dir}/node`.
 */
export async function pinTestMap(dir: string, name: string): Promise<string> {
  await Deno.mkdir(`${dir}/node`);
  assert.equal((await run("mount", ["-t", "bpf", "bpffs", `${dir}/node`])).code, 0);
  const pin = `${dir}/node/${name}`;
  const made = await run("bpftool", [
    ...["map", "create", pin, "type", "array", "key", "4", "value", "8", "entries", "1", "name", name],
  ]);
  assert.equal(made.code, 0, made.stderr);
  return pin;
}
