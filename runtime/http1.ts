/**
 * A strict, bounded HTTP/1.1 server for one connection, over any byte stream (a Deno unix, TCP or TLS
 * connection, runtime/conn_listener.ts): requests in order, keep-alive, `Content-Length` bodies only
 * (chunked bodies get 411), a header size limit (431), a body limit (413), header and idle timeouts.
 * Its own parser because the npm ones load Node's CommonJS layer: about 5 MiB more resident (BENCHMARKS.md).
 *
 * @example
 * ```ts
 * await serveHttp1(stream, (req) => app.fetch(req), DEFAULT_HTTP_LIMITS);
 * ```
 * @module
 */
import { isStreamed, writeStreamed } from "./http1_stream.ts";
import { Deadline } from "../lib/timers.ts";

/** A connection's bytes: `read` resolves null at the end of the stream or once `close` was called. */
export interface ByteStream {
  read(): Promise<Uint8Array | null>;
  write(bytes: Uint8Array<ArrayBuffer>): Promise<void>;
  close(): void;
}

/** The bounds of one connection. */
export interface HttpLimits {
  /** Largest request body (413 above). */
  maxBodyBytes: number;
  /** Largest request line plus headers (431 above). */
  maxHeaderBytes: number;
  /** Time from a connection's first byte of a request (or its accept) to the end of its headers. */
  headerTimeoutMs: number;
  /** Time a kept-alive connection may wait for its next request, and a body or an answer may take. */
  idleTimeoutMs: number;
}

/** 1 MiB bodies, 16 KiB of headers, 10 s for headers, 60 s idle. */
export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  maxBodyBytes: 1 << 20,
  maxHeaderBytes: 16 << 10,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
};

/** Answers one request. */
export type HttpHandler = (request: Request) => Promise<Response> | Response;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE =
  /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\/[\x21-\x7e]*|https?:\/\/[\x21-\x7e]+) HTTP\/1\.([01])$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const REASONS: Record<number, string> = {
  100: "Continue",
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  411: "Length Required",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};
const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();

/** A request the parser refuses: answered with `status` and the connection closed. */
class Refusal {
  constructor(readonly status: number, readonly code: string, readonly message: string) {}
}

/** The parsed head of one request. */
interface Head {
  method: string;
  target: string;
  minor: number;
  headers: Array<[string, string]>;
  contentLength: number;
  keepAlive: boolean;
  expectContinue: boolean;
}

/** Parses a request line and headers (the bytes before the blank line), or a Refusal. */
export function parseHead(bytes: Uint8Array, maxBodyBytes: number): Head | Refusal {
  const lines = latin1.decode(bytes).split("\r\n");
  const request = lines[0].match(REQUEST_LINE);
  if (!request) return new Refusal(400, "bad_request", "malformed request line");
  const [, method, requested, minor] = request;
  const headers: Array<[string, string]> = [];
  const lengths = new Set<string>();
  let host = 0, hostValue = "", connection = "", expect = "", chunked = false;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon), value = line.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, "");
    if (colon <= 0 || !TOKEN.test(name) || !FIELD_VALUE.test(value)) {
      return new Refusal(400, "bad_request", "malformed header line");
    }
    const lower = name.toLowerCase();
    if (lower === "content-length") lengths.add(value);
    else if (lower === "transfer-encoding") chunked = true;
    else if (lower === "host") [host, hostValue] = [host + 1, value.toLowerCase()];
    else if (lower === "connection") connection = value.toLowerCase();
    else if (lower === "expect") expect = value.toLowerCase();
    headers.push([name, value]);
  }
  if (headers.length > 100) return new Refusal(431, "headers_too_large", "more than 100 header fields");
  if (chunked) {
    return new Refusal(411, "length_required", "send the body with Content-Length (no chunked bodies)");
  }
  if (minor === "1" && host !== 1) return new Refusal(400, "bad_request", "HTTP/1.1 needs exactly one Host");
  // The absolute form (what a client sends through a proxy, as Deno's unix socket client does) must name
  // the same authority as Host; the function sees only the path.
  let target = requested;
  if (!requested.startsWith("/")) {
    const url = URL.parse(requested);
    if (!url || url.host !== hostValue) return new Refusal(400, "bad_request", "the target and Host differ");
    target = `${url.pathname}${url.search}`;
  }
  const [length = "0", ...others] = lengths;
  if (others.length || !/^\d{1,15}$/.test(length)) {
    return new Refusal(400, "bad_request", "bad Content-Length");
  }
  const contentLength = Number(length);
  if (contentLength > maxBodyBytes) {
    return new Refusal(413, "body_too_large", `the body is larger than ${maxBodyBytes} bytes`);
  }
  if (contentLength > 0 && (method === "GET" || method === "HEAD")) {
    return new Refusal(400, "bad_request", `${method} takes no body`);
  }
  return {
    method,
    target,
    minor: Number(minor),
    headers,
    contentLength,
    keepAlive: minor === "1" ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection),
    expectContinue: expect === "100-continue",
  };
}

/**
 * The bytes of an answer: status line, headers, `content-length`, then the body (none for HEAD): one
 * buffer for small answers, head and body apart for large ones (a copy of a 1 MB `list` is 1 MB more
 * garbage outside V8's heap, collected late).
 */
export async function serializeResponse(
  res: Response,
  head: boolean,
  keepAlive: boolean,
): Promise<Uint8Array<ArrayBuffer>[]> {
  const body = new Uint8Array(await res.arrayBuffer());
  let text = `HTTP/1.1 ${res.status} ${REASONS[res.status] ?? ""}\r\n`;
  res.headers.forEach((value, name) => {
    if (name !== "content-length" && name !== "connection" && name !== "transfer-encoding") {
      text += `${name}: ${value}\r\n`;
    }
  });
  text += `content-length: ${body.length}\r\n${keepAlive ? "" : "connection: close\r\n"}\r\n`;
  const start = encoder.encode(text);
  if (head) return [start];
  if (body.length > 64 << 10) return [start, body];
  const out = new Uint8Array(start.length + body.length);
  out.set(start);
  out.set(body, start.length);
  return [out];
}

/** Writes `parts` in order. */
async function writeParts(stream: ByteStream, parts: Uint8Array<ArrayBuffer>[]): Promise<void> {
  for (const part of parts) await stream.write(part);
}

function refusalResponse(r: Refusal): Response {
  return Response.json({ error: { code: r.code, message: r.message } }, { status: r.status });
}

function indexOfBlankLine(buf: Uint8Array, from: number): number {
  for (let i = Math.max(3, from); i < buf.length; i++) {
    if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) return i - 3;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Serves requests on `stream` until it ends, a limit or timeout closes it, or a request asks to close;
 * always closes the stream. `handler` errors answer 500.
 */
export async function serveHttp1(
  stream: ByteStream,
  handler: HttpHandler,
  limits: HttpLimits,
): Promise<void> {
  let buf: Uint8Array = new Uint8Array(0);
  const timeout = new Deadline(() => stream.close());
  const deadline = (ms: number) => timeout.set(ms);
  const more = async () => {
    const chunk = await stream.read().catch(() => null);
    if (chunk === null) return false;
    buf = buf.length ? concat(buf, chunk) : chunk;
    return true;
  };
  try {
    for (let first = true;; first = false) {
      // The head: a fresh connection has headerTimeoutMs for it, a kept-alive one idleTimeoutMs until a byte.
      deadline(first ? limits.headerTimeoutMs : limits.idleTimeoutMs);
      while (buf.length && (buf[0] === 13 || buf[0] === 10)) buf = buf.subarray(1);
      if (!buf.length) {
        if (!await more()) return;
        if (!first) deadline(limits.headerTimeoutMs);
      }
      let end: number;
      while ((end = indexOfBlankLine(buf, 0)) < 0) {
        if (buf.length > limits.maxHeaderBytes) {
          return await refuse(stream, new Refusal(431, "headers_too_large", "the request head is too large"));
        }
        if (!await more()) return;
      }
      if (end > limits.maxHeaderBytes) {
        return await refuse(stream, new Refusal(431, "headers_too_large", "the request head is too large"));
      }
      const head = parseHead(buf.subarray(0, end), limits.maxBodyBytes);
      buf = buf.subarray(end + 4);
      if (head instanceof Refusal) return await refuse(stream, head);
      // The body: within idleTimeoutMs; never more than Content-Length is kept.
      deadline(limits.idleTimeoutMs);
      if (head.expectContinue && head.contentLength > buf.length) {
        await stream.write(encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
      }
      // One buffer of the announced size, filled in place (appending chunk by chunk would copy it over and
      // over: a 1 MiB body cost the runtime 35 MiB of RSS).
      const body = new Uint8Array(head.contentLength);
      let filled = Math.min(buf.length, head.contentLength);
      body.set(buf.subarray(0, filled));
      buf = buf.subarray(filled);
      while (filled < head.contentLength) {
        const chunk = await stream.read().catch(() => null);
        if (chunk === null) return;
        const take = Math.min(chunk.length, head.contentLength - filled);
        body.set(chunk.subarray(0, take), filled);
        filled += take;
        buf = chunk.subarray(take); // the start of a pipelined request, if any
      }
      let request: Request;
      try {
        request = new Request(`http://bpfd${head.target}`, {
          method: head.method,
          headers: head.headers,
          body: head.method === "GET" || head.method === "HEAD" ? undefined : body,
        });
      } catch {
        return await refuse(stream, new Refusal(400, "bad_request", "the request cannot be represented"));
      }
      let response: Response;
      try {
        response = await handler(request);
      } catch (err) {
        const message = err instanceof Error ? err.message.slice(0, 200) : "internal error";
        response = Response.json({ error: { code: "internal", message } }, { status: 500 });
      }
      if (isStreamed(response) && head.method !== "HEAD") {
        timeout.clear(); // a trace session bounds its own time (runtime/http1_stream.ts)
        return await writeStreamed(stream, response);
      }
      deadline(limits.idleTimeoutMs);
      await writeParts(stream, await serializeResponse(response, head.method === "HEAD", head.keepAlive));
      if (!head.keepAlive) return;
    }
  } catch {
    /* the peer went away or a write failed: nothing to answer */
  } finally {
    timeout.clear();
    stream.close();
  }
}

/**
 * Answers a refusal, then reads and drops what the peer still sends (up to 2 s and 16 MiB), so that a
 * client still sending its body sees the answer rather than a reset.
 */
async function refuse(stream: ByteStream, refusal: Refusal): Promise<void> {
  await writeParts(stream, await serializeResponse(refusalResponse(refusal), false, false));
  const linger = new Deadline(() => stream.close());
  linger.set(2000);
  try {
    for (let dropped = 0; dropped < 16 << 20;) {
      const chunk = await stream.read().catch(() => null);
      if (chunk === null) break;
      dropped += chunk.length;
    }
  } finally {
    linger.clear();
  }
}
