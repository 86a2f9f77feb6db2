import * as assert from "node:assert/strict";
import { type ByteStream, DEFAULT_HTTP_LIMITS, parseHead, serveHttp1 } from "../../../runtime/http1.ts";

const head = (text: string) => parseHead(new TextEncoder().encode(text), 1024);
const statusOf = (r: ReturnType<typeof head>) => "status" in r ? r.status : 200;

Deno.test("parseHead: a well-formed head, keep-alive by version and Connection, absolute targets", () => {
  const h = head("POST /v1/functions/list HTTP/1.1\r\nHost: bpfd\r\nContent-Length: 2");
  assert.ok(!("status" in h));
  assert.equal(h.target, "/v1/functions/list");
  assert.equal(h.contentLength, 2);
  assert.equal(h.keepAlive, true);
  const closing = head("GET / HTTP/1.1\r\nHost: a\r\nConnection: close");
  assert.ok(!("status" in closing) && !closing.keepAlive);
  const old = head("GET / HTTP/1.0");
  assert.ok(!("status" in old) && !old.keepAlive);
  const absolute = head("GET http://bpfd/healthz?x=1 HTTP/1.1\r\nHost: bpfd");
  assert.ok(!("status" in absolute) && absolute.target === "/healthz?x=1");
});

Deno.test("parseHead: refuses smuggling and oddities with the right status", () => {
  const cases: Array<[string, number]> = [
    ["GET / HTTP/1.1", 400], // no Host
    ["GET / HTTP/1.1\r\nHost: a\r\nHost: b", 400],
    ["GET http://other/ HTTP/1.1\r\nHost: bpfd", 400],
    ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2", 400],
    ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1", 400],
    ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000", 413],
    ["POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked", 411],
    ["POST / HTTP/1.1\r\nHost: a\r\n folded: header", 400],
    ["POST / HTTP/1.1\r\nHost: a\r\nBad\0Name: x", 400],
    ["POST / HTTP/1.1\r\nHost: a\r\nX: a\0b", 400],
    ["GET / HTTP/2.0\r\nHost: a", 400],
    ["GET relative HTTP/1.1\r\nHost: a", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3", 400],
    [`GET / HTTP/1.1\r\nHost: a${"\r\nX: y".repeat(101)}`, 431],
  ];
  for (const [text, status] of cases) assert.equal(statusOf(head(text)), status, JSON.stringify(text));
});

/** A stream fed from `input` chunks that records what was written. */
function stream(input: string[]): ByteStream & { output: () => string; closed: boolean } {
  const chunks = input.map((s) => new TextEncoder().encode(s));
  let out = "";
  const s = {
    closed: false,
    read: () => Promise.resolve(s.closed ? null : chunks.shift() ?? null),
    write: (b: Uint8Array) => {
      out += new TextDecoder().decode(b);
      return Promise.resolve();
    },
    close: () => void (s.closed = true),
    output: () => out,
  };
  return s;
}

Deno.test("serveHttp1: pipelined requests in order, split across reads; a handler error is a 500", async () => {
  const s = stream([
    "POST /a HTTP/1.1\r\nHost: x\r\nContent-Len",
    'gth: 4\r\n\r\n{"a"',
    "GET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  ]);
  const seen: string[] = [];
  await serveHttp1(s, async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/boom") throw new Error("boom");
    seen.push(`${req.method} ${url.pathname} ${await req.text()}`);
    return new Response("ok");
  }, DEFAULT_HTTP_LIMITS);
  assert.deepEqual(seen, ['POST /a {"a"', "GET /b "]);
  const statuses = [...s.output().matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
  assert.deepEqual(statuses, ["200", "200", "500"]);
  assert.ok(s.closed);
});

Deno.test("serveHttp1: a head past the size limit is a 431 and the connection closes", async () => {
  const s = stream([`GET / HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(20_000)}`]);
  await serveHttp1(s, () => new Response("never"), DEFAULT_HTTP_LIMITS);
  assert.match(s.output(), /^HTTP\/1\.1 431 /);
  assert.ok(s.closed);
});
