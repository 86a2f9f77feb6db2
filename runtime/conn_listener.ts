/**
 * One accept loop for the node API's listeners (unix socket, TCP, TLS) over a `Deno.Listener`: at most
 * `maxConnections` connections at a time (more wait in the kernel's backlog), accept failures (EMFILE,
 * ENFILE) survived with a pause, each connection served by runtime/http1.ts with its bounds. Deno.serve is
 * not used: it has no connection limit or timeouts, and an EMFILE on its accept ends the process.
 *
 * @example
 * ```ts
 * const l = new ConnListener(Deno.listen({ port: 0 }), (conn) => conn.remoteAddr, handler, options);
 * l.close();
 * await l.finished;
 * ```
 * @module
 */
import type { Logger } from "../lib/log.ts";
import { after } from "../lib/timers.ts";
import { type ByteStream, type HttpLimits, serveHttp1 } from "./http1.ts";

/** The bounds of one listener. */
export interface ConnListenerOptions {
  maxConnections: number;
  limits: HttpLimits;
  log: Logger;
}

/**
 * What the listener knows of a fresh connection (its peer), or undefined to close it unserved. `done` is
 * called once the connection has ended.
 */
export type Accepted<P> = (conn: Deno.Conn) => { peer: P; done?: () => void } | undefined;

/** Answers one request from a known peer. */
export type PeerHandler<P> = (request: Request, peer: P) => Promise<Response> | Response;

/** A listening socket and its connections. */
export class ConnListener<P> {
  readonly #conns = new Set<Deno.Conn>();
  readonly #served = new Set<Promise<void>>();
  #closed = false;
  #slotFreed: (() => void) | undefined;
  /** Resolves when the listener is closed and its last connection ended. */
  readonly finished: Promise<void>;

  constructor(
    readonly listener: Deno.Listener,
    readonly accepted: Accepted<P>,
    readonly handler: PeerHandler<P>,
    readonly options: ConnListenerOptions,
  ) {
    this.finished = this.#run();
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
    const known = this.accepted(conn);
    if (!known) {
      closeQuietly(conn);
      return;
    }
    this.#conns.add(conn);
    const served = serveHttp1(
      new ConnStream(conn),
      (req) => this.handler(req, known.peer),
      this.options.limits,
    )
      .finally(() => {
        this.#conns.delete(conn);
        this.#served.delete(served);
        known.done?.();
        this.#slotFreed?.();
        this.#slotFreed = undefined;
      });
    this.#served.add(served);
  }

  /** Stops accepting, closes every connection; `finished` resolves once they are done. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.listener);
    for (const conn of this.#conns) closeQuietly(conn);
    this.#slotFreed?.();
  }
}

function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch { /* closed meanwhile */ }
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
    closeQuietly(this.conn);
  }
}
