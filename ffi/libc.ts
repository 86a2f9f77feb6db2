/**
 * The libc calls bpfd needs beside libbpf, bound once for all of ffi/: closing kernel fds, locks,
 * entering network namespaces, interface names, `perf_event_open` and the raw `bpf()` syscall. Failures
 * throw {@link SysError} with the errno name.
 *
 * @example
 * ```ts
 * const ifindex = inNetns("/run/netns/blue", () => ifNameToIndex("veth0"));
 * ```
 * @module
 */
import {
  CLONE_NEWNET,
  LOCK_EX,
  LOCK_UN,
  O_CLOEXEC,
  O_DIRECTORY,
  O_RDONLY,
  PERF_ATTR_FLAG_FREQ,
  PERF_FLAG_FD_CLOEXEC,
  PerfEventAttr,
  SYS_bpf,
  SYS_perf_event_open,
} from "./abi.ts";
import { SysError } from "./errno.ts";
import { cstring, lazyLibrary } from "./lazy.ts";

/** libc's symbols, bound on first use: for the ffi modules, nobody else (libc is bound here only). */
export const libc = lazyLibrary("libc.so.6", {
  close: { parameters: ["i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  __errno_location: { parameters: [], result: "pointer" },
  syscall_perf_event_open: {
    name: "syscall",
    parameters: ["i64", "buffer", "i32", "i32", "i32", "u64"],
    result: "i64",
  },
  syscall_bpf: { name: "syscall", parameters: ["i64", "i64", "buffer", "u32"], result: "i64" },
  vsnprintf: { parameters: ["buffer", "usize", "pointer", "pointer"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  statfs: { parameters: ["buffer", "buffer"], result: "i32" },
  malloc_trim: { parameters: ["usize"], result: "i32" },
  if_nameindex: { parameters: [], result: "pointer" },
  if_freenameindex: { parameters: ["pointer"], result: "void" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  ioctl: { parameters: ["i32", "u64", "i64"], result: "i32" },
});

const LOCK_NB = 4;

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

/**
 * Takes an exclusive flock on a directory (libxdp's lock on its bpffs directory), waiting for it.
 * Returns the release.
 */
export function lockDirectory(path: string): () => void {
  const fd = libc.open(cstring(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw new SysError("open", lastErrno(), path);
  if (libc.flock(fd, LOCK_EX) !== 0) {
    const err = lastErrno();
    closeFd(fd);
    throw new SysError("flock", err, path);
  }
  return () => {
    libc.flock(fd, LOCK_UN);
    closeFd(fd);
  };
}

/** The calling thread's errno after a failed libc call. */
export function lastErrno(): number {
  const p = libc.__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

/** Closes a kernel fd that bpfd owns; errors are ignored (there is nothing to do about them). */
export function closeFd(fd: number): void {
  if (fd >= 0) libc.close(fd);
}

/**
 * Gives the heap memory that native code freed back to the kernel (`malloc_trim`): glibc keeps freed
 * blocks for reuse, and a BPF object's ELF and BTF buffers would otherwise stay resident in the runtime.
 */
export function releaseFreedHeap(): void {
  libc.malloc_trim(0n);
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

/** A perf event to open: a tracepoint (`config` its id) or a kprobe/uprobe of a dynamic PMU. */
export interface PerfEvent {
  /** `PERF_TYPE_TRACEPOINT`, or the PMU's type from sysfs. */
  type: number;
  config: bigint;
  /** Probes: the function name or file path the kernel reads through `config1`. */
  probe?: string;
  /** Probes: the offset (`config2`). */
  offset?: bigint;
  /** Sampling events: a sample every this many events, or this many per second with `freq`. */
  samplePeriod?: bigint;
  freq?: boolean;
}

/** `perf_event_open(attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC)` for `event`; returns the fd. */
export function perfEventOpen(event: PerfEvent, pid: number, cpu: number): number {
  const attr = new Uint8Array(PerfEventAttr.size);
  const dv = new DataView(attr.buffer);
  const probe = event.probe === undefined ? undefined : cstring(event.probe);
  dv.setUint32(PerfEventAttr.type, event.type, true);
  dv.setUint32(PerfEventAttr.sizeField, PerfEventAttr.size, true);
  dv.setBigUint64(PerfEventAttr.config, event.config, true);
  if (probe) {
    dv.setBigUint64(
      PerfEventAttr.config1,
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(probe))),
      true,
    );
  }
  dv.setBigUint64(PerfEventAttr.config2, event.offset ?? 0n, true);
  dv.setBigUint64(PerfEventAttr.samplePeriod, event.samplePeriod ?? 0n, true);
  if (event.freq) dv.setBigUint64(PerfEventAttr.flags, PERF_ATTR_FLAG_FREQ, true);
  const fd = Number(
    libc.syscall_perf_event_open(
      BigInt(SYS_perf_event_open),
      attr,
      pid,
      cpu,
      -1,
      BigInt(PERF_FLAG_FD_CLOEXEC),
    ),
  );
  const errno = fd < 0 ? lastErrno() : 0;
  probe?.fill(0); // keeps the string referenced until the kernel has read it
  if (fd < 0) throw new SysError("perf_event_open", errno);
  return fd;
}

const PERF_EVENT_IOC_ENABLE = 0x2400, PERF_EVENT_IOC_SET_BPF = 0x40042408;

/**
 * Attaches program `progFd` to perf event `perfFd` without a BPF link (`ioctl(PERF_EVENT_IOC_SET_BPF)`, as
 * bcc and bpftrace do) and enables the event: the event holds the program until its fd is closed.
 */
export function perfEventSetBpf(perfFd: number, progFd: number): void {
  if (libc.ioctl(perfFd, BigInt(PERF_EVENT_IOC_SET_BPF), BigInt(progFd)) !== 0) {
    throw new SysError("ioctl(PERF_EVENT_IOC_SET_BPF)", lastErrno());
  }
  if (libc.ioctl(perfFd, BigInt(PERF_EVENT_IOC_ENABLE), 0n) !== 0) {
    throw new SysError("ioctl(PERF_EVENT_IOC_ENABLE)", lastErrno());
  }
}

/** The raw `bpf(cmd, attr, size)` syscall: the result (an fd or 0), or -errno. */
export function bpfSyscall(cmd: number, attr: Uint8Array<ArrayBuffer>): number {
  const r = Number(libc.syscall_bpf(BigInt(SYS_bpf), BigInt(cmd), attr, attr.length));
  return r < 0 ? -(lastErrno() || 22) : r;
}

/** Formats a printf-style message from a `va_list` pointer (libbpf's print callback). */
export function vformat(fmt: Deno.PointerValue, args: Deno.PointerValue): string {
  const n = libc.vsnprintf(formatBuffer, BigInt(formatBuffer.length), fmt, args);
  return utf8.decode(formatBuffer.subarray(0, Math.max(0, Math.min(n, formatBuffer.length - 1))));
}
const formatBuffer = new Uint8Array(4096);
const utf8 = new TextDecoder();
