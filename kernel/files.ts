/**
 * Opening files that a caller named (a bytecode object, a uprobe target) so that no request can freeze or
 * bloat the runtime: opened with O_NONBLOCK, checked on the opened fd (a regular file, within a size
 * limit), handed on as `/proc/self/fd/N` so that what was checked is what gets read. For a local caller,
 * a file it could not read itself is reported exactly like a missing one. A program's object is hashed at
 * load and checked again whenever it is reloaded from its path ({@link openRecordedObject}).
 *
 * @example
 * ```ts
 * using file = openUserFile("/tmp/prog.o", { maxBytes: 64 << 20 });
 * bpf.BpfObject.open(file.path);
 * ```
 * @module
 */
import { closeFile, type FdStat, openNonBlocking, statFd } from "../ffi/files.ts";
import { hasErrno, SysError } from "../ffi/errno.ts";
import { KernelError } from "./errors.ts";

/** Why a named file cannot be used; handlers name the field. */
export class UserFileError extends Error {
  constructor(readonly kind: "bad_path" | "not_found" | "not_regular" | "too_large", message: string) {
    super(message);
    this.name = "UserFileError";
  }
}

/** The user a file is opened for: read access is checked with its ids. */
export interface Reader {
  uid: number;
  gid: number;
  groups?: number[];
}

/** An opened, checked file; `path` reaches exactly this file while it is open. */
export interface UserFile extends Disposable {
  fd: number;
  path: string;
  size: number;
  close(): void;
}

/** Largest bytecode object (libbpf reads it whole). */
export const MAX_OBJECT_BYTES = 64 << 20;
/** Largest uprobe target (its symbols are read in bounded chunks). */
export const MAX_TARGET_BYTES = 1 << 30;

/** Whether `reader` may read a file with `stat`, by its mode bits. */
export function readableBy(stat: Pick<FdStat, "mode" | "uid" | "gid">, reader: Reader): boolean {
  if (reader.uid === 0) return true;
  if (stat.uid === reader.uid) return (stat.mode & 0o400) !== 0;
  if (stat.gid === reader.gid || reader.groups?.includes(stat.gid)) return (stat.mode & 0o040) !== 0;
  return (stat.mode & 0o004) !== 0;
}

/** Opens `path` for `reader` (undefined: the runtime itself), checked as the module doc says. */
export function openUserFile(path: string, opts: { maxBytes: number; reader?: Reader }): UserFile {
  const notFound = () =>
    new UserFileError("not_found", `${path}: no such file, or not readable by the caller`);
  if (path.includes("\0")) throw new UserFileError("bad_path", "the path contains a NUL character");
  if (!path.startsWith("/")) throw new UserFileError("bad_path", "must be an absolute path");
  let fd: number;
  try {
    fd = openNonBlocking(path);
  } catch (err) {
    if (hasErrno(err, "ENOENT", "EACCES", "EPERM")) throw notFound();
    if (err instanceof SysError) throw new UserFileError("bad_path", `${path}: ${err.code}`);
    throw err;
  }
  try {
    const stat = statFd(fd);
    if (opts.reader && !readableBy(stat, opts.reader)) throw notFound();
    if (!stat.isRegular) throw new UserFileError("not_regular", `${path} is not a regular file`);
    if (stat.size > opts.maxBytes) {
      throw new UserFileError("too_large", `${path} is larger than ${opts.maxBytes} bytes`);
    }
    const close = () => closeFile(fd);
    return { fd, path: `/proc/self/fd/${fd}`, size: stat.size, close, [Symbol.dispose]: close };
  } catch (err) {
    closeFile(fd);
    throw err;
  }
}

/** The SHA-256 (hex) of an opened file's content, read through its fd (what was checked is what is hashed). */
export async function sha256Of(file: UserFile): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(file.path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Opens program `programId`'s object again from its recorded `path` and checks its content against the
 * `sha256` recorded at load: a file that changed, went or is no longer a regular file is refused
 * (object_changed), so a slot reload never runs other code than what was loaded. Without a recorded hash
 * (records from before it was kept) the file is accepted and its hash returned, for the caller to record.
 */
export async function openRecordedObject(
  recorded: { path: string; sha256?: string },
  programId: number,
): Promise<{ file: UserFile; sha256: string }> {
  const { path, sha256 } = recorded;
  const changed = (why: string, cause?: unknown) =>
    new KernelError(
      "object_changed",
      "program",
      `program ${programId}: its object file ${path} ${why} since it was loaded; it is not loaded again ` +
        `(unload and load it again to use the new file)`,
      { programId, path },
      { cause },
    );
  let file: UserFile;
  try {
    file = openUserFile(path, { maxBytes: MAX_OBJECT_BYTES });
  } catch (err) {
    if (err instanceof UserFileError) throw changed(`changed (${err.message})`, err);
    throw err;
  }
  let now: string;
  try {
    now = await sha256Of(file);
  } catch (err) {
    file.close();
    throw err;
  }
  if (sha256 !== undefined && now !== sha256) {
    file.close();
    throw changed(`changed (sha256 ${now.slice(0, 12)}…, loaded ${sha256.slice(0, 12)}…)`);
  }
  return { file, sha256: now };
}
