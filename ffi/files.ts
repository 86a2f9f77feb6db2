/**
 * Opening a file someone else named without trusting it: `open(O_RDONLY | O_NONBLOCK)` returns at once
 * even for a FIFO or a device, and `fstat` of the opened fd says what was really opened (no stat-then-open
 * race). Failures throw {@link SysError} with the errno name.
 *
 * @example
 * ```ts
 * const fd = openNonBlocking("/tmp/prog.o");
 * const { isRegular, size } = statFd(fd);
 * ```
 * @module
 */
import { O_CLOEXEC, O_RDONLY } from "./abi.ts";
import { SysError } from "./errno.ts";
import { cstring } from "./lazy.ts";
import { lastErrno as errno, libc } from "./libc.ts";

const O_NONBLOCK = 0o4000, O_NOCTTY = 0o400;

/** Opens `path` read-only without blocking (no FIFO writer or device needed) and returns the raw fd. */
export function openNonBlocking(path: string): number {
  const fd = libc.open(cstring(path), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) throw new SysError("open", errno());
  return fd;
}

/** What `fstat` says about an open fd. */
export interface FdStat {
  isRegular: boolean;
  isSocket: boolean;
  /** The inode number (for a socket, unique while it exists). */
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
}

/** `fstat(fd)` (x86-64 `struct stat`: st_ino@8, st_mode@24, st_uid@28, st_gid@32, st_size@48). */
export function statFd(fd: number): FdStat {
  const buf = new Uint8Array(144);
  if (libc.fstat(fd, buf) !== 0) throw new SysError("fstat", errno());
  const view = new DataView(buf.buffer);
  const mode = view.getUint32(24, true);
  return {
    isRegular: (mode & 0o170000) === 0o100000,
    isSocket: (mode & 0o170000) === 0o140000,
    ino: Number(view.getBigUint64(8, true)),
    mode: mode & 0o7777,
    uid: view.getUint32(28, true),
    gid: view.getUint32(32, true),
    size: Number(view.getBigInt64(48, true)),
  };
}

const TMPFS_MAGIC = 0x01021994, RAMFS_MAGIC = 0x858458f6;

/**
 * Whether `path` is on a filesystem held in memory (tmpfs, ramfs), where a write never waits for a disk
 * and fsync has nothing to do.
 */
export function onMemoryFilesystem(path: string): boolean {
  const buf = new Uint8Array(120); // struct statfs; f_type is its first field, a long
  if (libc.statfs(cstring(path), buf) !== 0) throw new SysError("statfs", errno(), path);
  const type = Number(new DataView(buf.buffer).getBigUint64(0, true));
  return type === TMPFS_MAGIC || type === RAMFS_MAGIC;
}

/** Closes an fd {@link openNonBlocking} returned. */
export function closeFile(fd: number): void {
  if (fd >= 0) libc.close(fd);
}
