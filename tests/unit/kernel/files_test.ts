import * as assert from "node:assert/strict";
import { createHash } from "node:crypto"; // tests only: the runtime hashes with WebCrypto
import { KernelError } from "../../../kernel/errors.ts";
import { openRecordedObject, openUserFile, readableBy, UserFileError } from "../../../kernel/files.ts";

const kindOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof UserFileError) return err.kind;
    throw err;
  }
  return "opened";
};

Deno.test("openUserFile: bad paths, missing files, FIFOs, devices and large files are refused at once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/small`, "x".repeat(100));
    await new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).output();
    const opts = { maxBytes: 50 };
    assert.equal(kindOf(() => openUserFile(`${dir}/small\0x`, opts)), "bad_path");
    assert.equal(kindOf(() => openUserFile("relative", opts)), "bad_path");
    assert.equal(kindOf(() => openUserFile(`/${"a".repeat(5000)}`, opts)), "bad_path");
    assert.equal(kindOf(() => openUserFile(`${dir}/small/below`, opts)), "bad_path");
    assert.equal(kindOf(() => openUserFile(`${dir}/missing`, opts)), "not_found");
    assert.equal(kindOf(() => openUserFile(`${dir}/fifo`, opts)), "not_regular");
    assert.equal(kindOf(() => openUserFile("/dev/zero", opts)), "not_regular");
    assert.equal(kindOf(() => openUserFile(`${dir}/small`, opts)), "too_large");
    using file = openUserFile(`${dir}/small`, { maxBytes: 100 });
    assert.equal(await Deno.readTextFile(file.path), "x".repeat(100));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readableBy: owner, group and other bits, supplementary groups, root", () => {
  const file = { uid: 1000, gid: 100, mode: 0o640 };
  assert.equal(readableBy(file, { uid: 0, gid: 0 }), true);
  assert.equal(readableBy(file, { uid: 1000, gid: 5 }), true);
  assert.equal(readableBy(file, { uid: 1001, gid: 100 }), true);
  assert.equal(readableBy(file, { uid: 1001, gid: 5, groups: [100] }), true);
  assert.equal(readableBy(file, { uid: 1001, gid: 5 }), false);
  assert.equal(readableBy({ ...file, mode: 0o044 }, { uid: 1000, gid: 5 }), false);
});

Deno.test("openRecordedObject: the loaded content opens again; a changed, replaced or missing file is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/prog.o`;
    await Deno.writeTextFile(path, "loaded");
    const first = await openRecordedObject({ path }, 7); // a record from before hashes were kept: accepted
    first.file.close();
    assert.equal(first.sha256, createHash("sha256").update("loaded").digest("hex"));
    using same = (await openRecordedObject({ path, sha256: first.sha256 }, 7)).file;
    assert.equal(await Deno.readTextFile(same.path), "loaded");

    const refusal = async (fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        assert.ok(err instanceof KernelError);
        return { kind: err.kind, message: err.message, details: err.details };
      }
      assert.fail("opened");
    };
    await Deno.writeTextFile(path, "changed");
    const changed = await refusal(() => openRecordedObject({ path, sha256: first.sha256 }, 7));
    assert.equal(changed.kind, "object_changed");
    assert.match(changed.message, /^program 7: its object file .*prog\.o changed .* since it was loaded/);
    assert.deepEqual(changed.details, { programId: 7, path });
    await Deno.remove(path);
    await Deno.mkdir(path);
    assert.equal(
      (await refusal(() => openRecordedObject({ path, sha256: first.sha256 }, 7))).kind,
      "object_changed",
    );
    await Deno.remove(path);
    assert.equal((await refusal(() => openRecordedObject({ path }, 7))).kind, "object_changed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
