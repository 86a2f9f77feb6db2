/** Streamed answers on a fake connection: chunked as the body produces, and cancelled when the peer goes. */
import assert from "node:assert/strict";
import { isStreamed, writeStreamed } from "../../../runtime/http1_stream.ts";
import type { ByteStream } from "../../../runtime/http1.ts";

/** A connection whose peer sends nothing and goes away when `hangUp` is called. */
function fakeConnection() {
  const written: string[] = [];
  let hangUp!: () => void;
  const ended = new Promise<null>((resolve) => hangUp = () => resolve(null));
  const stream: ByteStream = {
    read: () => ended,
    write: (bytes) => {
      written.push(new TextDecoder().decode(bytes));
      return Promise.resolve();
    },
    close: () => hangUp(),
  };
  return { stream, written, hangUp };
}

const ndjson = (body: ReadableStream<Uint8Array>) =>
  new Response(body, { headers: { "content-type": "application/x-ndjson" } });

Deno.test("http1 stream: NDJSON answers are written chunk by chunk with chunked encoding, then the connection closes", async () => {
  assert.equal(isStreamed(Response.json({})), false);
  const { stream, written } = fakeConnection();
  const lines = ['{"line":"a"}\n', '{"end":{}}\n'].map((l) => new TextEncoder().encode(l));
  const res = ndjson(ReadableStream.from(lines));
  assert.ok(isStreamed(res));
  await writeStreamed(stream, res);
  assert.match(written[0], /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(written[0], /transfer-encoding: chunked\r\nconnection: close\r\n\r\n$/);
  assert.deepEqual(written.slice(1), ['d\r\n{"line":"a"}\n\r\n', 'b\r\n{"end":{}}\n\r\n', "0\r\n\r\n"]);
});

Deno.test("http1 stream: the peer going away cancels the body (which ends a trace session)", async () => {
  const { stream, hangUp } = fakeConnection();
  let cancelled = "";
  const body = new ReadableStream<Uint8Array>({
    cancel: (reason) => {
      cancelled = String(reason);
    },
  });
  const writing = writeStreamed(stream, ndjson(body));
  await new Promise((r) => setTimeout(r, 10));
  hangUp();
  await writing;
  assert.equal(cancelled, "the client went away");
});
