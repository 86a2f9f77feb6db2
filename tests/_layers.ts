// Image layers for tests, built as streams so that a large one never sits in memory: tar files (optionally
// gzip) with given entries, and gzip bombs (an entry of zeros that unpacks to far more than it downloads).
import { Buffer } from "node:buffer";
import { createGzip } from "node:zlib";
// @ts-types="npm:@types/tar-stream@3.1.4"
import tar from "tar-stream";

/** One tar entry: its bytes, or `zeros` bytes of zeros streamed in 1 MiB pieces. */
export interface LayerEntry {
  name: string;
  bytes?: Uint8Array;
  zeros?: number;
  type?: "file" | "directory" | "symlink";
}

/** A tar (gzip unless `gzip: false`) of `entries`, collected into memory (only the compressed form). */
export async function layer(entries: LayerEntry[], opts: { gzip?: boolean } = {}): Promise<Uint8Array> {
  const pack = tar.pack();
  const out: Uint8Array[] = [];
  const sink = opts.gzip === false ? pack : pack.pipe(createGzip({ level: 9 }));
  sink.on("data", (c: Uint8Array) => out.push(c));
  const ended = new Promise<void>((resolve, reject) => {
    sink.on("end", () => resolve());
    sink.on("error", reject);
  });
  const piece = Buffer.alloc(1 << 20);
  for (const e of entries) {
    const size = e.bytes?.length ?? e.zeros ?? 0;
    await new Promise<void>((resolve, reject) => {
      const w = pack.entry(
        { name: e.name, size, type: e.type ?? "file", mode: 0o644 },
        (err) => err ? reject(err) : resolve(),
      );
      (async () => {
        if (e.bytes) w.write(Buffer.from(e.bytes));
        for (let left = e.zeros ?? 0; left > 0; left -= piece.length) {
          const chunk = left >= piece.length ? piece : piece.subarray(0, left);
          if (!w.write(chunk)) await new Promise((r) => w.once("drain", r));
        }
        w.end();
      })().catch(reject);
    });
  }
  pack.finalize();
  await ended;
  return new Uint8Array(Buffer.concat(out));
}

/** A gzip layer whose one .o file is `unpacked` bytes of zeros: about 1/1000 of that to download. */
export function gzipBomb(unpacked: number, name = "bomb.o"): Promise<Uint8Array> {
  return layer([{ name, zeros: unpacked }]);
}
