/**
 * errno: the names of the values (x86-64 Linux), the errors that carry one — {@link SysError} for libc
 * calls, {@link LibbpfError} for libbpf and the raw bpf() syscall — and {@link hasErrno}, the one way to
 * test an error for an errno outside ffi/.
 *
 * @example
 * ```ts
 * try { objGet(path); } catch (err) { if (!hasErrno(err, "ENOENT")) throw err; }
 * ```
 * @module
 */

/** errno values by name (x86-64 Linux) and the reverse map. */
const ERRNO: Record<string, number> = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EINVAL: 22,
  ENOSPC: 28,
  EROFS: 30,
  ERANGE: 34,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EPROTO: 71,
  EBADMSG: 74,
  EOPNOTSUPP: 95,
  EADDRNOTAVAIL: 99,
  ESTALE: 116,
  ENOTSUPP: 524,
};
const ERRNO_NAMES = new Map(Object.entries(ERRNO).map(([name, value]) => [value, name]));

/** The symbolic name of an errno value, e.g. `errnoName(1) === "EPERM"`. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(Math.abs(errno)) ?? `errno ${Math.abs(errno)}`;
}

/** The errno value of a name, e.g. `errno("ENOENT") === 2`. */
export function errno(name: keyof typeof ERRNO | string): number {
  const value = ERRNO[name];
  if (value === undefined) throw new Error(`unknown errno name ${name}`);
  return value;
}

/** A failed system call: `errno` is the positive value, `code` its name (`ENOENT`, ...). */
export class SysError extends Error {
  readonly code: string;
  constructor(readonly call: string, readonly errno: number, detail = "") {
    const code = errnoName(errno);
    super(`${call}${detail ? ` ${detail}` : ""}: ${code}`);
    this.name = "SysError";
    this.code = code;
  }
}

/** A libbpf or bpf() call that failed. */
export class LibbpfError extends Error {
  /** The errno name, e.g. `EPERM`. */
  readonly code: string;
  constructor(
    /** What was being done, e.g. `load program xdp_counter`. */
    readonly op: string,
    /** The positive errno value. */
    readonly errno: number,
    /** libbpf's own messages printed during the call (warnings and info). */
    readonly libbpfLog: string[] = [],
    /** The kernel verifier's log, when the kernel refused a program. */
    readonly verifierLog?: string,
  ) {
    const code = errnoName(errno);
    super(`${op}: ${code}${libbpfLog.length ? ` (${libbpfLog.at(-1)})` : ""}`);
    this.name = "LibbpfError";
    this.code = code;
  }
}

/** Whether `err` is a failed libc, libbpf or bpf() call with one of these errno names (any, if none given). */
export function hasErrno(err: unknown, ...codes: string[]): err is SysError | LibbpfError {
  if (!(err instanceof SysError || err instanceof LibbpfError)) return false;
  return codes.length === 0 || codes.includes(err.code);
}
