import * as assert from "node:assert/strict";
import { functionOffset } from "../../../kernel/elf.ts";
import { MAX_TARGET_BYTES, openUserFile } from "../../../kernel/files.ts";
import { functionOffsetIn } from "../../../ffi/elf_symbols.ts";

const LIBC = "/lib/x86_64-linux-gnu/libc.so.6";

Deno.test("functionOffsetIn: the same offsets as the whole-file parser for libc's functions", async () => {
  using file = openUserFile(LIBC, { maxBytes: MAX_TARGET_BYTES });
  for (const name of ["getpid", "malloc", "open", "printf", "__libc_start_main"]) {
    assert.equal(await functionOffsetIn(file.path, file.size, name), await functionOffset(LIBC, name), name);
  }
  await assert.rejects(functionOffsetIn(file.path, file.size, "no_such_function_here"), /not found/);
});

Deno.test("functionOffsetIn: a file that only looks like ELF is refused, not read out of bounds", async () => {
  const path = await Deno.makeTempFile();
  try {
    const bytes = new Uint8Array(128);
    bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1]);
    new DataView(bytes.buffer).setBigUint64(0x28, 1n << 40n, true); // section headers far past the end
    new DataView(bytes.buffer).setUint16(0x3a, 64, true);
    new DataView(bytes.buffer).setUint16(0x3c, 3, true);
    await Deno.writeFile(path, bytes);
    await assert.rejects(functionOffsetIn(path, bytes.length, "main"), /not a well-formed ELF/);
    await Deno.writeTextFile(
      path,
      "not elf at all, but long enough to have a header of sixty-four bytes.....",
    );
    await assert.rejects(functionOffsetIn(path, 70, "main"), /not a 64-bit little-endian ELF/);
  } finally {
    await Deno.remove(path);
  }
});
