/**
 * Unix stream sockets through libc, for a listener that knows who its callers are: `SO_PEERCRED` and
 * `SO_PEERGROUPS` of an accepted connection (Deno's own sockets expose no fd), non-blocking `recv`/`send`,
 * and an epoll set whose wait runs on a worker thread (`nonblocking` FFI) so the event loop never blocks.
 *
 * @example
 * ```ts
 * const fd = bindUnix("/run/bpfd/bpfd.sock");
 * startListening(fd, 128);
 * ```
 * @module
 */
import { SysError } from "./errno.ts";
import { lastErrno as errno, libc } from "./libc.ts";

const AF_UNIX = 1, SOCK_STREAM = 1, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, SO_PEERCRED = 17, SO_PEERGROUPS = 59, MSG_NOSIGNAL = 0x4000;
const EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;
/** epoll event bits. */
export const EPOLLIN = 0x1, EPOLLOUT = 0x4, EPOLLRDHUP = 0x2000, EPOLLONESHOT = 1 << 30;
const EAGAIN = 11, EINTR = 4;

/** Closes an fd this module handed out. */
export function closeSocket(fd: number): void {
  if (fd >= 0) libc.close(fd);
}

/** A non-blocking unix stream socket bound to `path`, not yet listening (so permissions can be set first). */
export function bindUnix(path: string): number {
  const name = new TextEncoder().encode(path);
  if (name.length > 107) throw new SysError("bind", 36, path); // ENAMETOOLONG
  const fd = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new SysError("socket", errno());
  const addr = new Uint8Array(110);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(name, 2);
  if (libc.bind(fd, addr, 2 + name.length + 1) !== 0) {
    const err = new SysError("bind", errno(), path);
    libc.close(fd);
    throw err;
  }
  return fd;
}

/** Starts accepting connections on a bound socket. */
export function startListening(fd: number, backlog: number): void {
  if (libc.listen(fd, backlog) !== 0) throw new SysError("listen", errno());
}

/** Accepts one connection (non-blocking, close-on-exec); null when none is waiting. */
export function acceptConnection(fd: number): number | null {
  const conn = libc.accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (conn >= 0) return conn;
  const e = errno();
  if (e === EAGAIN || e === EINTR) return null;
  throw new SysError("accept4", e);
}

/** Who is at the other end of a unix connection, as the kernel recorded it at connect(). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
  /** Supplementary groups (SO_PEERGROUPS). */
  groups: number[];
}

/** The peer's credentials of a connected unix socket. */
export function peerCredentials(fd: number): PeerCredentials {
  const cred = new Uint8Array(12), len = new Uint32Array([12]);
  if (libc.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, new Uint8Array(len.buffer)) !== 0) {
    throw new SysError("getsockopt SO_PEERCRED", errno());
  }
  const view = new DataView(cred.buffer);
  const groups = new Uint32Array(256), glen = new Uint32Array([groups.byteLength]);
  const ok = libc.getsockopt(
    fd,
    SOL_SOCKET,
    SO_PEERGROUPS,
    new Uint8Array(groups.buffer),
    new Uint8Array(glen.buffer),
  );
  return {
    pid: view.getInt32(0, true),
    uid: view.getUint32(4, true),
    gid: view.getUint32(8, true),
    groups: ok === 0 ? [...groups.subarray(0, glen[0] / 4)] : [],
  };
}

/** Reads what is there into `buf`: the byte count, 0 at end of stream, null when nothing is waiting. */
export function receive(fd: number, buf: Uint8Array<ArrayBuffer>): number | null {
  const n = Number(libc.recv(fd, buf, BigInt(buf.length), 0));
  if (n >= 0) return n;
  const e = errno();
  if (e === EAGAIN || e === EINTR) return null;
  throw new SysError("recv", e);
}

/** Writes what the socket takes now (no SIGPIPE): the byte count, 0 when it would block. */
export function sendSome(fd: number, bytes: Uint8Array<ArrayBuffer>): number {
  const n = Number(libc.send(fd, bytes, BigInt(bytes.length), MSG_NOSIGNAL));
  if (n >= 0) return n;
  const e = errno();
  if (e === EAGAIN || e === EINTR) return 0;
  throw new SysError("send", e);
}

/** An epoll set with a wake-up eventfd; `wait` blocks a worker thread, never the event loop. */
export class EpollSet {
  readonly fd: number;
  readonly #wake: number;
  readonly #events: Uint8Array<ArrayBuffer>;
  readonly #ctl = new Uint8Array(12);

  constructor(readonly capacity = 64) {
    this.fd = libc.epoll_create1(SOCK_CLOEXEC);
    if (this.fd < 0) throw new SysError("epoll_create1", errno());
    this.#wake = libc.eventfd(0, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (this.#wake < 0) throw new SysError("eventfd", errno());
    this.#events = new Uint8Array(12 * capacity);
    this.add(this.#wake, EPOLLIN, 0n);
  }

  /** Watches `fd` for `events`, reporting `token`. */
  add(fd: number, events: number, token: bigint): void {
    this.#control(EPOLL_CTL_ADD, fd, events, token);
  }

  /** Re-arms a one-shot `fd` for `events`. */
  modify(fd: number, events: number, token: bigint): void {
    this.#control(EPOLL_CTL_MOD, fd, events, token);
  }

  /** Stops watching `fd` (before closing it). */
  remove(fd: number): void {
    libc.epoll_ctl(this.fd, EPOLL_CTL_DEL, fd, this.#ctl);
  }

  #control(op: number, fd: number, events: number, token: bigint): void {
    const view = new DataView(this.#ctl.buffer);
    view.setUint32(0, events >>> 0, true);
    view.setBigUint64(4, token, true);
    if (libc.epoll_ctl(this.fd, op, fd, this.#ctl) !== 0) throw new SysError("epoll_ctl", errno());
  }

  /** Waits up to `timeoutMs` on a worker thread; the ready tokens and their events (not the wake-up). */
  async wait(timeoutMs: number): Promise<Array<{ token: bigint; events: number }>> {
    const n = await libc.epoll_wait(this.fd, this.#events, this.capacity, timeoutMs);
    const view = new DataView(this.#events.buffer), ready = [];
    for (let i = 0; i < n; i++) {
      const token = view.getBigUint64(i * 12 + 4, true);
      if (token === 0n) libc.read(this.#wake, new Uint8Array(8), 8n);
      else ready.push({ token, events: view.getUint32(i * 12, true) });
    }
    return ready;
  }

  /** Makes a pending `wait` return now. */
  wake(): void {
    const one = new Uint8Array(8);
    one[0] = 1;
    libc.write(this.#wake, one, 8n);
  }

  /** Closes the set (after the last `wait` returned). */
  close(): void {
    libc.close(this.#wake);
    libc.close(this.fd);
  }
}
