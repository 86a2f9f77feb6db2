/** Function offsets for uprobes, read from real binaries on this machine (no privileges). */
import assert from "node:assert/strict";
import { ElfError, functionOffset } from "../../../ffi/elf.ts";

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
