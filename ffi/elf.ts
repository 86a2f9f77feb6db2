/**
 * Finds a function's file offset in an ELF64 binary or shared library, which is what a uprobe needs:
 * the symbol's address from `.symtab` or `.dynsym`, mapped through the executable PT_LOAD segment.
 *
 * @example
 * ```ts
 * const offset = await functionOffset("/lib/x86_64-linux-gnu/libc.so.6", "getpid");
 * ```
 * @module
 */

const SHT_SYMTAB = 2, SHT_DYNSYM = 11, PT_LOAD = 1, PF_X = 1;
const STT_FUNC = 2, STT_GNU_IFUNC = 10;

/** Why a symbol could not be resolved. */
export class ElfError extends Error {
  constructor(message: string, readonly kind: "not_elf" | "no_symbol") {
    super(message);
    this.name = "ElfError";
  }
}

/** The file offset of function `name` in the ELF file at `path`. */
export async function functionOffset(path: string, name: string): Promise<number> {
  const bytes = await Deno.readFile(path);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 64 || dv.getUint32(0) !== 0x7f454c46 || bytes[4] !== 2 || bytes[5] !== 1) {
    throw new ElfError(`${path} is not a 64-bit little-endian ELF file`, "not_elf");
  }
  const u64 = (at: number) => Number(dv.getBigUint64(at, true));
  const shoff = u64(0x28), shentsize = dv.getUint16(0x3a, true), shnum = dv.getUint16(0x3c, true);
  const phoff = u64(0x20), phentsize = dv.getUint16(0x36, true), phnum = dv.getUint16(0x38, true);

  let address: number | undefined;
  for (let i = 0; i < shnum && address === undefined; i++) {
    const sh = shoff + i * shentsize;
    const type = dv.getUint32(sh + 4, true);
    if (type !== SHT_SYMTAB && type !== SHT_DYNSYM) continue;
    const offset = u64(sh + 24), size = u64(sh + 32), entsize = u64(sh + 56) || 24;
    const strtab = shoff + dv.getUint32(sh + 40, true) * shentsize;
    const strOffset = u64(strtab + 24);
    for (let at = offset; at + entsize <= offset + size; at += entsize) {
      const kind = bytes[at + 4] & 0xf;
      const value = u64(at + 8);
      if ((kind !== STT_FUNC && kind !== STT_GNU_IFUNC) || value === 0) continue;
      const nameStart = strOffset + dv.getUint32(at, true);
      if (symbolNameIs(bytes, nameStart, name)) {
        address = value;
        break;
      }
    }
  }
  if (address === undefined) throw new ElfError(`function ${name} not found in ${path}`, "no_symbol");

  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (dv.getUint32(ph, true) !== PT_LOAD || !(dv.getUint32(ph + 4, true) & PF_X)) continue;
    const pOffset = u64(ph + 8), vaddr = u64(ph + 16), memsz = u64(ph + 40);
    if (address >= vaddr && address < vaddr + memsz) return address - vaddr + pOffset;
  }
  return address; // Not in a loadable segment (relocatable objects): the address is the offset.
}

function symbolNameIs(bytes: Uint8Array, start: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    if (bytes[start + i] !== name.charCodeAt(i)) return false;
  }
  return bytes[start + name.length] === 0;
}
