/**
 * The content-addressed image cache:
 *   blobs/sha256/<hex>        manifests, configs, layers, signature manifests and payloads, by digest
 *   objects/<manifest hex>/   the .o files extracted from an image's layers
 *   images/<manifest hex>.json  pointers: index digest, signature manifests; its mtime: last use
 *   refs/<sha256(ref)>.json   tag reference -> manifest digest, for IfNotPresent and Never
 *   tmp/                      staging of pulls in progress; committed by rename, removed on failure
 * Nothing is trusted on read: blobs are hashed again, objects re-extracted from the verified layer and
 * compared with the files handed to the loader.
 *
 * @example
 * ```ts
 * const staging = await new ImageCache("/var/lib/bpfd/images").stage();
 * ```
 * @module
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import { ImageError } from "./errors.ts";
import { type Descriptor, isLayerType, readLayerObjects } from "./format.ts";
import { assertDigest, digestOf, sha256Hex } from "./registry.ts";

export interface ImageRecord {
  /** Digest of the platform manifest (the cache key). */
  digest: string;
  /** Digest of the index it was chosen from, if any. */
  indexDigest?: string;
  url: string;
  /** Digests of the cosign .sig manifests found at pull time (for the manifest and the index). */
  signatureManifests: string[];
  pulledAt: string;
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch {
    return false;
  }
}

async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  if (typeof data === "string") await Deno.writeTextFile(tmp, data);
  else await Deno.writeFile(tmp, data);
  await Deno.rename(tmp, path);
}

/** Writes all of `chunk` (a write may take only part of it). */
export async function writeAll(f: Deno.FsFile, chunk: Uint8Array): Promise<void> {
  for (let off = 0; off < chunk.length;) off += await f.write(chunk.subarray(off));
}

/** The sha256 (hex) of a stream of bytes. */
async function sha256Of(data: AsyncIterable<Uint8Array>): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of data) h.update(chunk);
  return h.digest("hex");
}

export class Staging {
  readonly dir: string;
  #cache: ImageCache;
  #blobs = new Set<string>();
  #objects = new Map<string, Map<string, string>>(); // manifest hex -> name -> staged path

  constructor(cache: ImageCache, dir: string) {
    this.#cache = cache;
    this.dir = dir;
  }

  blobPath(digest: string): string {
    return join(this.dir, "blob-" + assertDigest(digest, "blob"));
  }

  /** Opens a staging file for a blob that the caller streams and verifies. */
  async openBlob(digest: string): Promise<Deno.FsFile> {
    this.#blobs.add(digest);
    return await Deno.open(this.blobPath(digest), { write: true, create: true, truncate: true });
  }

  async putBlob(bytes: Uint8Array, digest = digestOf(bytes)): Promise<string> {
    if (digestOf(bytes) !== digest) {
      throw new ImageError("digest_mismatch", `blob does not hash to ${digest}`);
    }
    this.#blobs.add(digest);
    await Deno.writeFile(this.blobPath(digest), bytes);
    return digest;
  }

  /** Streams one extracted object file into staging. */
  async writeObject(
    manifestDigest: string,
    name: string,
    data: AsyncIterable<Uint8Array>,
  ): Promise<void> {
    const hex = assertDigest(manifestDigest, "manifest");
    const p = join(this.dir, `obj-${hex}-${name}`);
    const f = await Deno.open(p, { write: true, create: true, truncate: true, mode: 0o644 });
    try {
      for await (const chunk of data) await writeAll(f, chunk);
    } finally {
      f.close();
    }
    let m = this.#objects.get(hex);
    if (!m) this.#objects.set(hex, m = new Map());
    m.set(name, p);
  }

  /** Moves everything staged into the cache. */
  async commit(record?: ImageRecord, ref?: string): Promise<void> {
    const c = this.#cache;
    for (const d of this.#blobs) await Deno.rename(this.blobPath(d), c.blobPath(d));
    for (const [hex, files] of this.#objects) {
      const dir = join(c.dir, "objects", hex);
      await Deno.mkdir(dir, { recursive: true });
      for (const [name, p] of files) await Deno.rename(p, join(dir, name));
    }
    if (record) {
      await writeAtomic(c.recordPath(record.digest), JSON.stringify(record));
    }
    if (ref && record) await c.writeRef(ref, record.digest);
  }

  async discard(): Promise<void> {
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

export class ImageCache {
  readonly dir: string;
  #ready?: Promise<void>;

  constructor(dir: string) {
    this.dir = dir;
  }

  init(): Promise<void> {
    this.#ready ??= (async () => {
      for (const d of ["blobs/sha256", "objects", "images", "refs", "tmp"]) {
        await Deno.mkdir(join(this.dir, d), { recursive: true, mode: 0o700 });
      }
    })();
    return this.#ready;
  }

  blobPath(digest: string): string {
    return join(this.dir, "blobs", "sha256", assertDigest(digest, "blob"));
  }

  objectPath(manifestDigest: string, name: string): string {
    return join(this.objectDir(manifestDigest), name);
  }

  /** The directory of an image's extracted objects. */
  objectDir(manifestDigest: string): string {
    return join(this.dir, "objects", assertDigest(manifestDigest, "manifest"));
  }

  /** The record of an image; its modification time is when the image was last used. */
  recordPath(manifestDigest: string): string {
    return join(this.dir, "images", `${assertDigest(manifestDigest, "manifest")}.json`);
  }

  /** Marks an image used now (eviction removes the least recently used first). */
  async touch(manifestDigest: string): Promise<void> {
    const now = new Date();
    await Deno.utime(this.recordPath(manifestDigest), now, now).catch(() => {/* evicted meanwhile */});
  }

  async stage(): Promise<Staging> {
    await this.init();
    return new Staging(this, await Deno.makeTempDir({ dir: join(this.dir, "tmp"), prefix: "pull-" }));
  }

  async hasBlob(digest: string): Promise<boolean> {
    return await exists(this.blobPath(digest));
  }

  /** Reads a blob and checks that it still hashes to its name. */
  async readBlob(digest: string): Promise<Uint8Array> {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(this.blobPath(digest));
    } catch (e) {
      throw new ImageError("cache_corrupt", `cache: blob ${digest} missing (${(e as Error).message})`);
    }
    const got = digestOf(bytes);
    if (got !== digest) {
      throw new ImageError(
        "cache_corrupt",
        `cache: blob ${this.blobPath(digest)} was changed on disk (hashes to ${got}); refusing it`,
      );
    }
    return bytes;
  }

  /** Streams a blob from disk, failing at the end if it does not hash to its name. */
  readBlobStream(digest: string): ReadableStream<Uint8Array> {
    const hex = assertDigest(digest, "blob");
    const h = createHash("sha256");
    const path = this.blobPath(digest);
    let file: Deno.FsFile | undefined;
    return new ReadableStream<Uint8Array>({
      async pull(ctl) {
        try {
          file ??= await Deno.open(path);
        } catch (e) {
          ctl.error(
            new ImageError("cache_corrupt", `cache: blob ${digest} missing (${(e as Error).message})`),
          );
          return;
        }
        const buf = new Uint8Array(64 * 1024);
        const n = await file.read(buf);
        if (n === null) {
          file.close();
          const got = h.digest("hex");
          if (got !== hex) {
            ctl.error(
              new ImageError(
                "cache_corrupt",
                `cache: blob ${path} was changed on disk (hashes to sha256:${got})`,
              ),
            );
          } else ctl.close();
          return;
        }
        const chunk = buf.subarray(0, n);
        h.update(chunk);
        ctl.enqueue(chunk);
      },
      cancel() {
        file?.close();
      },
    });
  }

  /**
   * Unpacks an image's layers again from their blobs (hashed as they are read) and checks that each object
   * file on disk equals what the layers hold, streaming both; returns the object names. cache_corrupt if not.
   */
  async verifyObjects(
    manifestDigest: string,
    layers: Descriptor[],
    limits: { maxUnpackedBytes: number },
  ): Promise<string[]> {
    const names = new Set<string>();
    let unpacked = 0;
    for (const layer of layers) {
      unpacked += await readLayerObjects(
        this.readBlobStream(layer.digest),
        isLayerType(layer.mediaType) ?? "tar",
        limits.maxUnpackedBytes - unpacked,
        async (name, data) => {
          const p = this.objectPath(manifestDigest, name);
          const inImage = await sha256Of(data);
          let onDisk: string;
          try {
            onDisk = await sha256Of((await Deno.open(p)).readable);
          } catch {
            throw new ImageError("cache_corrupt", `cache: object ${p} is missing`);
          }
          if (onDisk !== inImage) {
            throw new ImageError(
              "cache_corrupt",
              `cache: object ${p} was changed on disk (sha256 ${onDisk.slice(0, 16)}…, image has ` +
                `${inImage.slice(0, 16)}…); refusing it`,
            );
          }
          names.add(name);
        },
        `cached layer ${layer.digest}`,
      );
    }
    return [...names];
  }

  async readRecord(digest: string): Promise<ImageRecord | undefined> {
    try {
      const r = JSON.parse(await Deno.readTextFile(this.recordPath(digest))) as ImageRecord;
      return r.digest === digest ? r : undefined;
    } catch {
      return undefined;
    }
  }

  /** The file that maps a tag reference to a digest. */
  refPath(ref: string): string {
    return join(this.dir, "refs", `${sha256Hex(ref)}.json`);
  }

  async resolveRef(ref: string): Promise<string | undefined> {
    try {
      const r = JSON.parse(await Deno.readTextFile(this.refPath(ref))) as { ref: string; digest: string };
      return r.ref === ref && /^sha256:[a-f0-9]{64}$/.test(r.digest) ? r.digest : undefined;
    } catch {
      return undefined;
    }
  }

  async writeRef(ref: string, digest: string): Promise<void> {
    await writeAtomic(this.refPath(ref), JSON.stringify({ ref, digest }));
  }

  /** Every file under the cache (tests use it to check that failures leave nothing behind). */
  async listFiles(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (d: string) => {
      for await (const e of Deno.readDir(d)) {
        const p = join(d, e.name);
        if (e.isDirectory) await walk(p);
        else out.push(p.slice(this.dir.length + 1));
      }
    };
    if (await exists(this.dir)) await walk(this.dir);
    return out.sort();
  }
}
