/**
 * Finds a function's file offset in an ELF64 binary or shared library, which is what a uprobe needs:
 * the symbol's address from `.symtab` or `.dynsym`, mapped through the executable PT_LOAD segment. Read in
 * bounded chunks — the string table searched for the name, then the symbol table for that name's offset —
 * never more than 256 KiB in memory and with the event loop running between chunks, however large the
 * file is.
 *
 * @example
 * ```ts
 * const offset = await functionOffset("/lib/x86_64-linux-gnu/libc.so.6", "getpid");
 * ```
 * @module
 */

/** Why a symbol could not be resolved. */
export class ElfError extends Error {
  constructor(message: string, readonly kind: "not_elf" | "no_symbol") {
    super(message);
    this.name = "ElfError";
  }
}

const SHT_SYMTAB = 2, SHT_DYNSYM = 11, PT_LOAD = 1, PF_X = 1;
const STT_FUNC = 2, STT_GNU_IFUNC = 10;
const CHUNK = 256 << 10;
const latin1 = new TextDecoder("latin1");

/**
 * The file offset of function `name` in the ELF file at `path`; `shownAs` names the file in errors when
 * `path` is the `/proc/self/fd/N` of a checked file (kernel/files.ts).
 */
export async function functionOffset(
  path: string,
  name: string,
  opts: { shownAs?: string } = {},
): Promise<number> {
  const shownAs = opts.shownAs ?? path;
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  const read = async (offset: number, length: number): Promise<DataView> => {
    if (offset < 0 || length < 0 || offset + length > size) {
      throw new ElfError(`${shownAs} is not a well-formed ELF file`, "not_elf");
    }
    const bytes = new Uint8Array(length);
    await file.seek(offset, Deno.SeekMode.Start);
    for (let got = 0; got < length;) {
      const n = await file.read(bytes.subarray(got));
      if (n === null) throw new ElfError(`${shownAs} is shorter than it says`, "not_elf");
      got += n;
    }
    return new DataView(bytes.buffer);
  };
  if (size < 64) throw new ElfError(`${shownAs} is not a 64-bit little-endian ELF file`, "not_elf");
  const eh = await read(0, 64);
  if (eh.getUint32(0) !== 0x7f454c46 || eh.getUint8(4) !== 2 || eh.getUint8(5) !== 1) {
    throw new ElfError(`${shownAs} is not a 64-bit little-endian ELF file`, "not_elf");
  }
  const u64 = (dv: DataView, at: number) => Number(dv.getBigUint64(at, true));
  const shoff = u64(eh, 0x28), shentsize = eh.getUint16(0x3a, true), shnum = eh.getUint16(0x3c, true);
  const phoff = u64(eh, 0x20), phentsize = eh.getUint16(0x36, true), phnum = eh.getUint16(0x38, true);
  if (shnum && shentsize < 64 || phnum && phentsize < 56) {
    throw new ElfError(`${shownAs}: bad header sizes`, "not_elf");
  }
  const sections = await read(shoff, shnum * shentsize);
  const section = (i: number) => ({
    type: sections.getUint32(i * shentsize + 4, true),
    offset: u64(sections, i * shentsize + 24),
    size: u64(sections, i * shentsize + 32),
    link: sections.getUint32(i * shentsize + 40, true),
    entsize: u64(sections, i * shentsize + 56),
  });

  let address: number | undefined;
  for (let i = 0; i < shnum && address === undefined; i++) {
    const symtab = section(i);
    if ((symtab.type !== SHT_SYMTAB && symtab.type !== SHT_DYNSYM) || symtab.link >= shnum) continue;
    const names = await nameOffsets(read, section(symtab.link), name);
    if (names.size) address = await symbolAddress(read, symtab, names);
  }
  if (address === undefined) throw new ElfError(`function ${name} not found in ${shownAs}`, "no_symbol");

  const programs = await read(phoff, phnum * phentsize);
  for (let i = 0; i < phnum; i++) {
    const ph = i * phentsize;
    if (programs.getUint32(ph, true) !== PT_LOAD || !(programs.getUint32(ph + 4, true) & PF_X)) continue;
    const pOffset = u64(programs, ph + 8), vaddr = u64(programs, ph + 16), memsz = u64(programs, ph + 40);
    if (address >= vaddr && address < vaddr + memsz) return address - vaddr + pOffset;
  }
  return address; // Not in a loadable segment (relocatable objects): the address is the offset.
}

type Read = (offset: number, length: number) => Promise<DataView>;

/** The offsets in string table `strtab` where `name` starts as a whole string. */
async function nameOffsets(read: Read, strtab: { offset: number; size: number }, name: string) {
  const found = new Set<number>();
  // A name may be the tail of a longer string (the linker shares suffixes): look for `name\0` anywhere.
  // Each chunk starts one name's length early, so a match across a boundary is seen.
  const needle = `${name}\0`;
  for (let at = 0; at < strtab.size; at += CHUNK) {
    const start = Math.max(0, at - needle.length);
    const length = Math.min(strtab.size, at + CHUNK) - start;
    const text = latin1.decode(await read(strtab.offset + start, length));
    for (let i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + 1)) found.add(start + i);
  }
  return found;
}

/** The address of the first function symbol in `symtab` whose name is at one of `names`. */
async function symbolAddress(
  read: Read,
  symtab: { offset: number; size: number; entsize: number },
  names: Set<number>,
): Promise<number | undefined> {
  const entsize = symtab.entsize || 24;
  if (entsize < 24) return undefined;
  const perChunk = Math.max(1, Math.floor(CHUNK / entsize)) * entsize;
  for (let at = 0; at + entsize <= symtab.size; at += perChunk) {
    const length = Math.min(perChunk, Math.floor((symtab.size - at) / entsize) * entsize);
    const dv = await read(symtab.offset + at, length);
    for (let e = 0; e + entsize <= length; e += entsize) {
      const kind = dv.getUint8(e + 4) & 0xf;
      if (kind !== STT_FUNC && kind !== STT_GNU_IFUNC) continue;
      const value = Number(dv.getBigUint64(e + 8, true));
      if (value !== 0 && names.has(dv.getUint32(e, true))) return value;
    }
  }
  return undefined;
}
