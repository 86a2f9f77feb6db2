/**
 * The kubelet's gRPC client (grpc-go) dials a unix socket with the socket's path as the HTTP/2 `:authority`;
 * Deno's HTTP/2 server (under `@grpc/grpc-js`) refuses such an authority with a GOAWAY. This relay sits on
 * the sockets the kubelet dials and forwards each connection to the gRPC server's own socket, byte for byte,
 * except the client's header blocks: decoded (HPACK, with the client's table), `:authority` set to
 * `localhost`, encoded again (with the relay's own table toward the server).
 *
 * @example
 * ```ts
 * const relay = relayUnix("/var/lib/kubelet/plugins_registry/x-reg.sock", "/run/x/grpc.sock");
 * relay.close();
 * ```
 * @module
 */
import hpack from "hpack.js";

const PREFACE = 24;
const HEADERS = 1, CONTINUATION = 9;
const END_STREAM = 0x1, END_HEADERS = 0x4, PADDED = 0x8, PRIORITY = 0x20;

interface Header {
  name: string;
  value: string;
}

/** A listening relay. */
export interface Relay {
  close(): void;
}

/** Reads exactly `n` bytes (undefined at the end of the stream). */
class Reader {
  #buf = new Uint8Array(0);
  constructor(readonly conn: Deno.Conn) {}

  async take(n: number): Promise<Uint8Array | undefined> {
    while (this.#buf.length < n) {
      const chunk = new Uint8Array(16384);
      const got = await this.conn.read(chunk);
      if (got === null) return undefined;
      const joined = new Uint8Array(this.#buf.length + got);
      joined.set(this.#buf);
      joined.set(chunk.subarray(0, got), this.#buf.length);
      this.#buf = joined;
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

function frame(type: number, flags: number, stream: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  out.set([payload.length >> 16, (payload.length >> 8) & 255, payload.length & 255, type, flags]);
  out.set([(stream >>> 24) & 127, (stream >> 16) & 255, (stream >> 8) & 255, stream & 255], 5);
  out.set(payload, 9);
  return out;
}

/** The header block fragment of a HEADERS frame's payload (padding and priority removed). */
function fragment(flags: number, payload: Uint8Array): Uint8Array {
  let start = 0, end = payload.length;
  if (flags & PADDED) end -= payload[start++];
  if (flags & PRIORITY) start += 5;
  return payload.subarray(start, end);
}

async function forward(client: Deno.Conn, server: Deno.Conn): Promise<void> {
  const reader = new Reader(client);
  const decoder = hpack.decompressor.create({ table: { size: 4096 } });
  const encoder = hpack.compressor.create({ table: { size: 4096 } });
  const preface = await reader.take(PREFACE);
  if (!preface) return;
  await writeAll(server, preface);
  let pending: { stream: number; flags: number; block: Uint8Array[] } | undefined;
  while (true) {
    const head = await reader.take(9);
    if (!head) return;
    const length = (head[0] << 16) | (head[1] << 8) | head[2];
    const type = head[3], flags = head[4];
    const stream = ((head[5] & 127) << 24) | (head[6] << 16) | (head[7] << 8) | head[8];
    const payload = length ? await reader.take(length) : new Uint8Array(0);
    if (!payload) return;
    if (type === HEADERS) pending = { stream, flags, block: [fragment(flags, payload)] };
    else if (type === CONTINUATION && pending) pending.block.push(payload);
    else {
      await writeAll(server, head);
      await writeAll(server, payload);
      continue;
    }
    if (!(flags & END_HEADERS)) continue; // CONTINUATION frames follow
    decoder.write(new Uint8Array(pending.block.flatMap((b) => [...b])));
    decoder.execute();
    const headers: Header[] = [];
    for (let h: Header | null; (h = decoder.read());) {
      headers.push(
        h.name === ":authority" ? { name: h.name, value: "localhost" } : { name: h.name, value: h.value },
      );
    }
    encoder.write(headers);
    const block = new Uint8Array(encoder.read());
    await writeAll(server, frame(HEADERS, END_HEADERS | (pending.flags & END_STREAM), pending.stream, block));
    pending = undefined;
  }
}

async function relayConnection(client: Deno.Conn, upstream: string): Promise<void> {
  let server: Deno.Conn | undefined;
  try {
    server = await Deno.connect({ transport: "unix", path: upstream });
    const back = server.readable.pipeTo(client.writable, { preventClose: false }).catch(() => {/* closed */});
    await forward(client, server).catch(() => {/* a broken or closed connection: both ends close */});
    server.close();
    await back;
  } catch {
    /* the server is gone: the client sees its connection close */
  } finally {
    try {
      client.close();
    } catch { /* closed by the pipe */ }
  }
}

/** Listens on `path` (mode 0600) and relays every connection to the unix socket `upstream`. */
export async function relayUnix(path: string, upstream: string): Promise<Relay> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.remove(path).catch(() => {/* no stale socket */});
  const listener = Deno.listen({ transport: "unix", path });
  await Deno.chmod(path, 0o600);
  (async () => {
    for await (const conn of listener) relayConnection(conn, upstream);
  })().catch(() => {/* listener closed */});
  return { close: () => listener.close() };
}
