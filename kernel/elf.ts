/**
 * Finds a function's file offset in an ELF64 binary or shared library, which is what a uprobe needs. The
 * file is opened as kernel/files.ts opens what callers name (no FIFO or device, at most
 * MAX_TARGET_BYTES) and read in bounded chunks by ffi/elf_symbols.ts, so no target can freeze or bloat
 * the runtime.
 *
 * @example
 * ```ts
 * const offset = await functionOffset("/lib/x86_64-linux-gnu/libc.so.6", "getpid");
 * ```
 * @module
 */
import { ElfSymbolError, functionOffsetIn } from "../ffi/elf_symbols.ts";
import { MAX_TARGET_BYTES, openUserFile, UserFileError } from "./files.ts";

/** Why a symbol could not be resolved. */
export class ElfError extends Error {
  constructor(message: string, readonly kind: "not_elf" | "no_symbol") {
    super(message);
    this.name = "ElfError";
  }
}

/** The file offset of function `name` in the ELF file at `path`. */
export async function functionOffset(path: string, name: string): Promise<number> {
  try {
    using file = openUserFile(path, { maxBytes: MAX_TARGET_BYTES });
    return await functionOffsetIn(file.path, file.size, name);
  } catch (err) {
    if (err instanceof ElfSymbolError) {
      throw new ElfError(err.message.replace(/\/proc\/self\/fd\/\d+/, path), err.kind);
    }
    if (err instanceof UserFileError) throw new ElfError(err.message, "not_elf");
    throw err;
  }
}
