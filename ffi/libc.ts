/**
 * The few libc calls bpfd needs beside libbpf: closing kernel fds, entering network namespaces,
 * interface names, `perf_event_open`. Failures throw {@link SysError} with the errno name.
 *
 * @module
 */
import {
  CLONE_NEWNET,
  errnoName,
  O_CLOEXEC,
  O_RDONLY,
  PERF_FLAG_FD_CLOEXEC,
  SYS_perf_event_open,
} from "./abi.ts";
import { cstring, lazyLibrary } from "./lazy.ts";

const libc = lazyLibrary("libc.so.6", {
  close: { parameters: ["i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  __errno_location: { parameters: [], result: "pointer" },
  syscall: { parameters: ["i64", "buffer", "i32", "i32", "i32", "u64"], result: "i64" },
  vsnprintf: { parameters: ["buffer", "usize", "pointer", "pointer"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
});

const LOCK_EX = 2, LOCK_NB = 4;

/**
 * Takes an exclusive lock on `path` (created if missing) without waiting. Returns the fd that holds the
 * lock (closing it, or exiting, releases it), or null when another process holds it.
 */
export function tryLockFile(path: string): number | null {
  Deno.writeTextFileSync(path, "", { append: true });
  const fd = openRaw(path);
  if (libc.flock(fd, LOCK_EX | LOCK_NB) === 0) return fd;
  const err = lastErrno();
  closeFd(fd);
  if (err === 11) return null; // EWOULDBLOCK
  throw new SysError("flock", err, path);
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

function lastErrno(): number {
  const p = libc.__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

/** Closes a kernel fd that bpfd owns; errors are ignored (there is nothing to do about them). */
export function closeFd(fd: number): void {
  if (fd >= 0) libc.close(fd);
}

/** Opens `path` read-only and returns the raw fd (Deno's own files do not expose fds). */
export function openRaw(path: string): number {
  const fd = libc.open(cstring(path), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw new SysError("open", lastErrno(), path);
  return fd;
}

/** The interface index of `name` in the calling thread's network namespace, or 0 if there is none. */
export function ifNameToIndex(name: string): number {
  return libc.if_nametoindex(cstring(name));
}

/**
 * Runs `fn` with the calling thread in the network namespace at `nsPath`, then returns to the original
 * one. FFI calls run on the JS thread, so everything `fn` does synchronously happens in that namespace.
 */
export function inNetns<T>(nsPath: string | undefined, fn: () => T): T {
  if (!nsPath) return fn();
  const original = openRaw("/proc/thread-self/ns/net");
  try {
    const target = openRaw(nsPath);
    try {
      if (libc.setns(target, CLONE_NEWNET) !== 0) throw new SysError("setns", lastErrno(), nsPath);
    } finally {
      closeFd(target);
    }
    let outcome: { value: T } | { error: unknown };
    try {
      outcome = { value: fn() };
    } catch (error) {
      outcome = { error };
    }
    if (libc.setns(original, CLONE_NEWNET) !== 0) {
      // Staying in the wrong namespace would silently misdirect every later call: fail loudly instead.
      throw new SysError("setns (return to the runtime's namespace)", lastErrno());
    }
    if ("error" in outcome) throw outcome.error;
    return outcome.value;
  } finally {
    closeFd(original);
  }
}

/** `perf_event_open(attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC)`; `attr` is a filled `perf_event_attr`. */
export function perfEventOpen(attr: Uint8Array<ArrayBuffer>, pid: number, cpu: number): number {
  const fd = Number(
    libc.syscall(BigInt(SYS_perf_event_open), attr, pid, cpu, -1, BigInt(PERF_FLAG_FD_CLOEXEC)),
  );
  if (fd < 0) throw new SysError("perf_event_open", lastErrno());
  return fd;
}

/** Formats a printf-style message from a `va_list` pointer (libbpf's print callback). */
export function vformat(fmt: Deno.PointerValue, args: Deno.PointerValue): string {
  const buf = new Uint8Array(4096);
  const n = libc.vsnprintf(buf, BigInt(buf.length), fmt, args);
  return new TextDecoder().decode(buf.subarray(0, Math.max(0, Math.min(n, buf.length - 1))));
}
