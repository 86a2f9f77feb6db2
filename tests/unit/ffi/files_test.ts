/**
 * ffi/files.ts: `onMemoryFilesystem` agrees with the kernel's mount table for every mount point this
 * machine has (tmpfs, devtmpfs and ramfs are memory; ext4, proc, sysfs … are not), and names the path it could
 * not inspect.
 * @module
 */
import assert from "node:assert/strict";
import { onMemoryFilesystem } from "../../../ffi/files.ts";
import { SysError } from "../../../ffi/errno.ts";

/** Mount points and their filesystem types, from /proc/self/mountinfo (octal escapes decoded). */
function mounts(): Array<{ path: string; type: string }> {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  return Deno.readTextFileSync("/proc/self/mountinfo").trim().split("\n").map((line) => {
    const fields = line.split(" ");
    const after = fields.indexOf("-");
    return { path: unescape(fields[4]), type: fields[after + 1] };
  });
}

Deno.test("onMemoryFilesystem: tmpfs, devtmpfs and ramfs are memory, other filesystems are not", () => {
  const seen = new Map<string, string>();
  for (const { path, type } of mounts()) seen.set(path, type); // the last mount on a path is the visible one
  const checked = { memory: 0, other: 0 };
  for (const [path, type] of seen) {
    let memory: boolean;
    try {
      memory = onMemoryFilesystem(path);
    } catch {
      continue; // a mount this process may not look into
    }
    const expected = ["tmpfs", "ramfs", "devtmpfs"].includes(type); // devtmpfs is a tmpfs
    assert.equal(memory, expected, `${path} (${type})`);
    checked[expected ? "memory" : "other"]++;
  }
  assert.ok(checked.memory > 0 && checked.other > 0, `checked ${JSON.stringify(checked)}`);
});

Deno.test("onMemoryFilesystem: a missing path is a SysError naming it", () => {
  assert.throws(
    () => onMemoryFilesystem("/nonexistent/bpfd-test"),
    (err) =>
      err instanceof SysError && err.code === "ENOENT" && err.message.includes("/nonexistent/bpfd-test"),
  );
});
