/**
 * Streamed answers on runtime/http1.ts's connections: an answer whose body is NDJSON (a trace session)
 * is written chunk by chunk as it comes (`transfer-encoding: chunked`, then the connection closes) with no
 * idle timeout (the session bounds its own time); the peer going away cancels the body, which ends the
 * session.
 *
 * @example
 * ```ts
 * if (isStreamed(response)) return await writeStreamed(stream, response);
 * ```
 * @module
 */
import type { ByteStream } from "./http1.ts";
import { TRACE_CONTENT_TYPE } from "../model/trace.ts";

const encoder = new TextEncoder();

/** Whether an answer is written as it comes rather than whole. */
export function isStreamed(res: Response): boolean {
  return res.body !== null && res.headers.get("content-type") === TRACE_CONTENT_TYPE;
}

/** Writes a streamed answer chunk by chunk, then closes the connection; cancels the body if the peer goes. */
export async function writeStreamed(stream: ByteStream, res: Response): Promise<void> {
  let head = `HTTP/1.1 ${res.status} ${res.statusText || "OK"}\r\n`;
  res.headers.forEach((value, name) => {
    if (name !== "content-length" && name !== "connection" && name !== "transfer-encoding") {
      head += `${name}: ${value}\r\n`;
    }
  });
  const reader = res.body!.getReader();
  let gone = false;
  // Nothing more is expected from the peer: what it sends is dropped; its end cancels the answer.
  const watch = (async () => {
    while (await stream.read().catch(() => null) !== null) { /* dropped */ }
    gone = true;
    await reader.cancel("the client went away").catch(() => {/* ended already */});
  })();
  try {
    await stream.write(encoder.encode(`${head}transfer-encoding: chunked\r\nconnection: close\r\n\r\n`));
    for (;;) {
      const { done, value } = await reader.read();
      if (done || gone) break;
      if (!value.length) continue;
      const size = encoder.encode(`${value.length.toString(16)}\r\n`);
      const chunk = new Uint8Array(size.length + value.length + 2);
      chunk.set(size);
      chunk.set(value, size.length);
      chunk.set([13, 10], size.length + value.length);
      await stream.write(chunk);
    }
    if (!gone) await stream.write(encoder.encode("0\r\n\r\n"));
  } catch {
    await reader.cancel("the connection failed").catch(() => {/* ended already */});
  } finally {
    stream.close();
    await watch;
  }
}
