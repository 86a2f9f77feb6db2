/** Function offsets for uprobes, read from real binaries on this machine (no privileges). */
import assert from "node:assert/strict";
import { ElfError, functionOffset } from "../../../ffi/elf.ts";
import { MAX_TARGET_BYTES, openUserFile } from "../../../kernel/files.ts";

const LIBC = "/lib/x86_64-linux-gnu/libc.so.6";

/** What binutils says: the symbol's address mapped through the executable segment. */
async function readelfOffset(path: string, name: string): Promise<number> {
  const run = async (args: string[]) =>
    new TextDecoder().decode((await new Deno.Command("readelf", { args, stdout: "piped" }).output()).stdout);
  const symbol = (await run(["-W", "--dyn-syms", path])).split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find((f) => (f[7] === name || f[7]?.startsWith(`${name}@@`)) && (f[3] === "FUNC" || f[3] === "IFUNC"));
  assert.ok(symbol, `readelf finds ${name}`);
  const address = parseInt(symbol[1], 16);
  for (const line of (await run(["-W", "-l", path])).split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[0] !== "LOAD" || !line.includes("E")) continue;
    const [offset, vaddr, memsz] = [parseInt(f[1], 16), parseInt(f[2], 16), parseInt(f[5], 16)];
    if (address >= vaddr && address < vaddr + memsz) return address - vaddr + offset;
  }
  return address;
}

Deno.test("elf: a library function's file offset is what readelf says", async () => {
  assert.equal(await functionOffset(LIBC, "getpid"), await readelfOffset(LIBC, "getpid"));
});

Deno.test("elf: a missing symbol and a file that is not ELF are told apart", async () => {
  await assert.rejects(
    functionOffset(LIBC, "no_such_function_here"),
    (e) => e instanceof ElfError && e.kind === "no_symbol",
  );
  await assert.rejects(
    functionOffset("/etc/hostname", "x"),
    (e) => e instanceof ElfError && e.kind === "not_elf",
  );
});

Deno.test("elf: libc's functions through a checked fd, as uprobes read them; the name in errors is the path", async () => {
  using file = openUserFile(LIBC, { maxBytes: MAX_TARGET_BYTES });
  for (const name of ["getpid", "malloc", "open", "printf", "__libc_start_main"]) {
    assert.equal(await functionOffset(file.path, name), await readelfOffset(LIBC, name), name);
  }
  await assert.rejects(
    functionOffset(file.path, "no_such_function_here", { shownAs: LIBC }),
    /not found in \/lib/,
  );
});

Deno.test("elf: a file that only looks like ELF is refused, not read out of bounds", async () => {
  const path = await Deno.makeTempFile();
  try {
    const bytes = new Uint8Array(128);
    bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1]);
    new DataView(bytes.buffer).setBigUint64(0x28, 1n << 40n, true); // section headers far past the end
    new DataView(bytes.buffer).setUint16(0x3a, 64, true);
    new DataView(bytes.buffer).setUint16(0x3c, 3, true);
    await Deno.writeFile(path, bytes);
    await assert.rejects(functionOffset(path, "main"), (e) => e instanceof ElfError && e.kind === "not_elf");
  } finally {
    await Deno.remove(path);
  }
});
