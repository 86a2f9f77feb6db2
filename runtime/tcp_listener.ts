/**
 * The TCP listener (plain or TLS) with the same bounds as the unix socket: its own accept loop over
 * `Deno.listen`/`Deno.listenTls` (Deno.serve has no connection limit or timeouts, and an EMFILE on its
 * accept ends the process), at most `maxConnections` at a time, HTTP/1.1 by runtime/http1.ts.
 *
 * @example
 * ```ts
 * const l = TcpListener.open({ hostname: "127.0.0.1", port: 0 }, (req, remote) => app.fetch(req), options);
 * ```
 * @module
 */
import type { Logger } from "../lib/log.ts";
import { after } from "../lib/timers.ts";
import { type ByteStream, type HttpLimits, serveHttp1 } from "./http1.ts";

/** The bounds of one listener. */
export interface TcpListenerOptions {
  maxConnections: number;
  limits: HttpLimits;
  log: Logger;
  /** PEM certificate and key: TLS when given. */
  tls?: { cert: string; key: string };
}

/** Answers one request from a remote address. */
export type RemoteHandler = (request: Request, remote: Deno.NetAddr) => Promise<Response> | Response;

/** A listening TCP socket and its connections. */
export class TcpListener {
  readonly #conns = new Set<Deno.Conn>();
  readonly #served = new Set<Promise<void>>();
  #closed = false;
  #slotFreed: (() => void) | undefined;
  /** Resolves when the listener is closed and its last connection ended. */
  readonly finished: Promise<void>;

  private constructor(
    readonly listener: Deno.Listener,
    readonly handler: RemoteHandler,
    readonly options: TcpListenerOptions,
  ) {
    this.finished = this.#run();
  }

  /** Listens on `addr` and serves until `close`. */
  static open(
    addr: { hostname: string; port: number },
    handler: RemoteHandler,
    options: TcpListenerOptions,
  ): TcpListener {
    const listener = options.tls
      ? Deno.listenTls({ ...addr, cert: options.tls.cert, key: options.tls.key })
      : Deno.listen(addr);
    return new TcpListener(listener, handler, options);
  }

  /** The address it listens on. */
  get addr(): Deno.NetAddr {
    return this.listener.addr as Deno.NetAddr;
  }

  async #run(): Promise<void> {
    let lastWarning = 0;
    while (!this.#closed) {
      if (this.#conns.size >= this.options.maxConnections) {
        await new Promise<void>((resolve) => this.#slotFreed = resolve);
        continue;
      }
      let conn: Deno.Conn;
      try {
        conn = await this.listener.accept();
      } catch (err) {
        if (this.#closed) break;
        // EMFILE/ENFILE and friends: the connection waits in the backlog; try again shortly.
        if (Date.now() - lastWarning > 10_000) {
          lastWarning = Date.now();
          this.options.log.warn("accept failed; retrying", { error: (err as Error).message });
        }
        await new Promise<void>((r) => after(100, r));
        continue;
      }
      this.#serve(conn);
    }
    await Promise.allSettled([...this.#served]);
  }

  #serve(conn: Deno.Conn): void {
    this.#conns.add(conn);
    const remote = conn.remoteAddr as Deno.NetAddr;
    const served = serveHttp1(new ConnStream(conn), (req) => this.handler(req, remote), this.options.limits)
      .finally(() => {
        this.#conns.delete(conn);
        this.#served.delete(served);
        this.#slotFreed?.();
        this.#slotFreed = undefined;
      });
    this.#served.add(served);
  }

  /** Stops accepting, closes every connection; `finished` resolves once they are done. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.listener.close();
    } catch { /* already closed */ }
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch { /* closed meanwhile */ }
    }
    this.#slotFreed?.();
  }
}

/** A Deno connection as a ByteStream. */
class ConnStream implements ByteStream {
  #closed = false;
  readonly #buf = new Uint8Array(64 << 10);

  constructor(readonly conn: Deno.Conn) {}

  async read(): Promise<Uint8Array | null> {
    if (this.#closed) return null;
    const n = await this.conn.read(this.#buf);
    return n === null ? null : this.#buf.slice(0, n);
  }

  async write(bytes: Uint8Array<ArrayBuffer>): Promise<void> {
    let written = 0;
    while (written < bytes.length) written += await this.conn.write(bytes.subarray(written));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* closed meanwhile */ }
  }
}
