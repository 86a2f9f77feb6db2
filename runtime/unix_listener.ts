/**
 * The unix socket listener: accepts through libc so that each caller is known by the kernel's
 * `SO_PEERCRED`/`SO_PEERGROUPS`, drives its connections from one epoll set (the wait runs on a worker
 * thread), and serves HTTP/1.1 on them with runtime/http1.ts. At most `maxConnections` at a time; when
 * accept fails (EMFILE, ENFILE) it pauses and tries again, it never throws.
 *
 * @example
 * ```ts
 * const l = UnixListener.open("/run/bpfd/bpfd.sock", (req, peer) => app.fetch(req, { peer }), options);
 * ```
 * @module
 */
import {
  acceptConnection,
  bindUnix,
  closeSocket,
  EPOLLIN,
  EPOLLONESHOT,
  EPOLLOUT,
  EPOLLRDHUP,
  EpollSet,
  type PeerCredentials,
  peerCredentials,
  receive,
  sendSome,
  startListening,
} from "../ffi/socket.ts";
import type { Logger } from "../lib/log.ts";
import { after } from "../lib/timers.ts";
import { type ByteStream, type HttpLimits, serveHttp1 } from "./http1.ts";

/** The bounds of one listener. */
export interface ListenerOptions {
  /** Connections served at once; more wait in the kernel's backlog. */
  maxConnections: number;
  limits: HttpLimits;
  log: Logger;
  /** Called after bind and before listen: set the socket file's owner and mode here. */
  beforeListen?: () => Promise<void>;
}

/** Answers one request from a known peer. */
export type PeerHandler = (request: Request, peer: PeerCredentials) => Promise<Response> | Response;

/** A listening unix socket and its connections. */
export class UnixListener {
  readonly #epoll = new EpollSet();
  readonly #waiters = new Map<bigint, (events: number) => void>();
  readonly #streams = new Set<FdStream>();
  readonly #served = new Set<Promise<void>>();
  #closed = false;
  #paused = false;
  #generation = 0n;
  #lastWarning = 0;
  /** Resolves when the listener is closed and its last connection ended. */
  readonly finished: Promise<void>;

  private constructor(
    readonly fd: number,
    readonly handler: PeerHandler,
    readonly options: ListenerOptions,
  ) {
    this.#epoll.add(fd, EPOLLIN | EPOLLONESHOT, this.#listenToken);
    this.finished = this.#run();
  }

  /** Binds `path`, runs `beforeListen`, listens and serves until `close`. */
  static async open(path: string, handler: PeerHandler, options: ListenerOptions): Promise<UnixListener> {
    const fd = bindUnix(path);
    try {
      await options.beforeListen?.();
      startListening(fd, 128);
    } catch (err) {
      closeSocket(fd);
      throw err;
    }
    return new UnixListener(fd, handler, options);
  }

  get #listenToken(): bigint {
    return BigInt(this.fd) | (1n << 40n);
  }

  /** Waits until `fd` is ready for `events` (one-shot), or until the listener closes. */
  waitFor(fd: number, token: bigint, events: number): Promise<number> {
    return new Promise((resolve) => {
      this.#waiters.set(token, resolve);
      this.#epoll.modify(fd, events | EPOLLRDHUP | EPOLLONESHOT, token);
    });
  }

  async #run(): Promise<void> {
    this.#waiters.set(this.#listenToken, () => this.#acceptSome());
    while (!this.#closed) {
      for (const { token, events } of await this.#epoll.wait(1000)) {
        const waiter = this.#waiters.get(token);
        this.#waiters.delete(token);
        waiter?.(events);
      }
    }
    await Promise.allSettled([...this.#served]);
    this.#epoll.close();
  }

  #rearmListen(): void {
    if (this.#closed) return;
    this.#waiters.set(this.#listenToken, () => this.#acceptSome());
    this.#epoll.modify(this.fd, EPOLLIN | EPOLLONESHOT, this.#listenToken);
  }

  #acceptSome(): void {
    for (let i = 0; i < 64; i++) {
      if (this.#streams.size >= this.options.maxConnections) {
        this.#paused = true;
        return;
      }
      let fd: number | null;
      try {
        fd = acceptConnection(this.fd);
      } catch (err) {
        // EMFILE/ENFILE/ENOMEM: the connection stays in the backlog; try again shortly.
        if (Date.now() - this.#lastWarning > 10_000) {
          this.#lastWarning = Date.now();
          this.options.log.warn("accept failed; retrying", { error: (err as Error).message });
        }
        after(100, () => this.#rearmListen());
        return;
      }
      if (fd === null) break;
      this.#serve(fd);
    }
    this.#rearmListen();
  }

  #serve(fd: number): void {
    let peer: PeerCredentials;
    try {
      peer = peerCredentials(fd);
    } catch {
      closeSocket(fd); // a peer the kernel cannot name is not served
      return;
    }
    this.#generation = this.#generation % 0x3fffffn + 1n; // 22 bits above the fd's 41: tokens fit in 64
    const token = BigInt(fd) | (this.#generation << 41n);
    this.#epoll.add(fd, EPOLLONESHOT, token);
    const stream = new FdStream(this, fd, token);
    this.#streams.add(stream);
    const served = serveHttp1(stream, (req) => this.handler(req, peer), this.options.limits).finally(() => {
      this.#streams.delete(stream);
      this.#served.delete(served);
      if (this.#paused && this.#streams.size < this.options.maxConnections) {
        this.#paused = false;
        this.#rearmListen();
      }
    });
    this.#served.add(served);
  }

  /** Forgets a closing stream's descriptor: no more events for it. */
  release(fd: number, token: bigint): void {
    this.#epoll.remove(fd);
    const waiter = this.#waiters.get(token);
    this.#waiters.delete(token);
    waiter?.(0);
  }

  /** Stops accepting, closes every connection; `finished` resolves once they are done. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#epoll.remove(this.fd);
    closeSocket(this.fd);
    for (const stream of this.#streams) stream.close();
    this.#epoll.wake();
  }
}

/** One accepted connection's bytes, read and written without blocking. */
class FdStream implements ByteStream {
  #closed = false;
  readonly #buf = new Uint8Array(64 << 10);

  constructor(readonly listener: UnixListener, readonly fd: number, readonly token: bigint) {}

  async read(): Promise<Uint8Array | null> {
    while (!this.#closed) {
      const n = receive(this.fd, this.#buf);
      if (n === 0) return null;
      if (n !== null) return this.#buf.slice(0, n);
      await this.listener.waitFor(this.fd, this.token, EPOLLIN);
    }
    return null;
  }

  async write(bytes: Uint8Array<ArrayBuffer>): Promise<void> {
    let rest = bytes;
    while (rest.length) {
      if (this.#closed) throw new Error("connection closed");
      const n = sendSome(this.fd, rest);
      rest = rest.subarray(n);
      if (n === 0) await this.listener.waitFor(this.fd, this.token, EPOLLOUT);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.listener.release(this.fd, this.token);
    closeSocket(this.fd);
  }
}
