/**
 * bpfman's bytecode image format: an image FROM scratch with one layer (tar, usually gzip) holding the
 * .o files at its root, and config labels naming the programs and maps:
 *   io.ebpf.programs  JSON {function name: program type}
 *   io.ebpf.maps      JSON {map name: map type}
 * and, in older images, io.ebpf.program_name / io.ebpf.bpf_function_name / io.ebpf.program_type /
 * io.ebpf.filename for a single program.
 *
 * @example
 * ```ts
 * const image = await buildImage({ objects: [{ name: "x.o", bytes }], programs: { xdp_pass: "xdp" } });
 * ```
 * @module
 */
import { Readable } from "node:stream";
import { createHash } from "node:crypto";
// @ts-types="npm:@types/tar-stream@3.1.4"
import tar from "tar-stream";
import { ImageError } from "./errors.ts";
import { digestOf, MT } from "./registry.ts";
import { concat } from "./transport.ts";

export const LABEL_PROGRAMS = "io.ebpf.programs";
export const LABEL_MAPS = "io.ebpf.maps";
export const LABEL_PROGRAM_NAME = "io.ebpf.program_name";
export const LABEL_FUNCTION_NAME = "io.ebpf.bpf_function_name";
export const LABEL_PROGRAM_TYPE = "io.ebpf.program_type";
export const LABEL_FILENAME = "io.ebpf.filename";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
}

export interface BytecodeLabels {
  programs: Record<string, string>;
  maps: Record<string, string>;
  filename?: string;
}

function isRecordOfStrings(v: unknown): v is Record<string, string> {
  return typeof v === "object" && v !== null && !Array.isArray(v) &&
    Object.values(v).every((x) => typeof x === "string");
}

function isDescriptor(d: unknown): d is Descriptor {
  const x = d as Descriptor;
  return typeof x === "object" && x !== null && typeof x.mediaType === "string" &&
    typeof x.digest === "string" && typeof x.size === "number" && x.size >= 0;
}

/** A value from a registry for a message: media types and platforms as they are, anything else hidden. */
export function shown(value: string | undefined): string {
  if (!value) return "(none)";
  return /^[\w.+\/-]{1,100}$/.test(value) ? value : "(not shown)";
}

/** Parses JSON from a registry; the error never quotes the bytes (they may come from anywhere). */
export function parseJSON(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new ImageError("bad_image", `${what} is not JSON`);
  }
}

export function parseIndex(bytes: Uint8Array, what: string): ImageIndex {
  const j = parseJSON(bytes, what) as ImageIndex;
  if (!j || !Array.isArray(j.manifests) || !j.manifests.every(isDescriptor)) {
    throw new ImageError("bad_image", `${what}: not an image index (no valid "manifests" list)`);
  }
  return j;
}

export function parseManifest(bytes: Uint8Array, what: string): ImageManifest {
  const j = parseJSON(bytes, what) as ImageManifest;
  if (!j || j.schemaVersion !== 2 || !isDescriptor(j.config) || !Array.isArray(j.layers)) {
    throw new ImageError("bad_image", `${what}: not a schema 2 image manifest`);
  }
  if (!j.layers.every(isDescriptor)) throw new ImageError("bad_image", `${what}: malformed layer descriptor`);
  return j;
}

/** A platform as OCI names it: `linux`/`amd64`, `linux`/`arm64`/`v8`. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** OCI architecture names (and the default variant) of Deno.build.arch values. */
const OCI_ARCH: Record<string, { architecture: string; variant?: string }> = {
  x86_64: { architecture: "amd64" },
  aarch64: { architecture: "arm64", variant: "v8" },
};

/** The platform of the machine this runs on, in OCI names (linux/amd64, linux/arm64/v8). */
export function hostPlatform(arch: string = Deno.build.arch, os: string = Deno.build.os): Platform {
  return { os, ...(OCI_ARCH[arch] ?? { architecture: arch }) };
}

const showPlatform = (p: { os?: string; architecture?: string; variant?: string } | undefined) =>
  `${shown(p?.os)}/${shown(p?.architecture)}${p?.variant ? `/${shown(p.variant)}` : ""}`;

/**
 * Picks the manifest for `want` from an index: same os and architecture, and the same variant when both
 * name one (an entry without variant serves any; arm64's v8 is its default). A lone entry without
 * platform is taken as is; otherwise a missing platform is a not_found naming what the list has.
 */
export function choosePlatform(index: ImageIndex, want: Platform, what: string): Descriptor {
  const manifests = index.manifests.filter((m) =>
    m.mediaType === MT.ociManifest || m.mediaType === MT.dockerManifest
  );
  const variant = (p: { architecture?: string; variant?: string } | undefined) =>
    p?.variant ?? (p?.architecture === "arm64" ? "v8" : undefined);
  const same = manifests.filter((m) =>
    m.platform?.os === want.os && m.platform?.architecture === want.architecture
  );
  const hit = same.find((m) => variant(m.platform) === variant(want)) ??
    same.find((m) => !m.platform?.variant || !want.variant);
  if (hit) return hit;
  if (manifests.length === 1 && !manifests[0].platform) return manifests[0];
  const have = manifests.slice(0, 16).map((m) => showPlatform(m.platform)).join(", ");
  throw new ImageError(
    "not_found",
    `${what}: no manifest for this node's platform ${showPlatform(want)} in the list (has: ${
      have || "none"
    })`,
  );
}

/** Reads the bytecode labels from an image config (config.Labels), falling back to manifest annotations. */
export function readLabels(
  config: unknown,
  annotations: Record<string, string> | undefined,
  what: string,
): BytecodeLabels {
  const c = config as { config?: { Labels?: Record<string, string> | null } };
  const labels: Record<string, string> = { ...(annotations ?? {}), ...(c?.config?.Labels ?? {}) };
  const parseLabel = (key: string): Record<string, string> | undefined => {
    const raw = labels[key];
    if (raw === undefined || raw === "") return undefined;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch {
      throw new ImageError("bad_image", `${what}: label ${key} is not JSON`);
    }
    if (!isRecordOfStrings(v)) {
      throw new ImageError(
        "bad_image",
        `${what}: label ${key} must be a JSON object of name -> type strings`,
      );
    }
    return v;
  };
  const programs = parseLabel(LABEL_PROGRAMS) ?? {};
  const maps = parseLabel(LABEL_MAPS) ?? {};
  const fn = labels[LABEL_FUNCTION_NAME] ?? labels[LABEL_PROGRAM_NAME];
  const type = labels[LABEL_PROGRAM_TYPE];
  if (Object.keys(programs).length === 0 && fn && type) programs[fn] = type;
  if (Object.keys(programs).length === 0) {
    throw new ImageError(
      "bad_image",
      `${what}: not a bytecode image: no ${LABEL_PROGRAMS} label and no ${LABEL_FUNCTION_NAME}/${LABEL_PROGRAM_TYPE}`,
    );
  }
  const filename = labels[LABEL_FILENAME] || undefined;
  return { programs, maps, filename };
}

export function isLayerType(mt: string): "gzip" | "tar" | undefined {
  if (mt === MT.ociLayerGzip || mt === MT.dockerLayerGzip) return "gzip";
  if (mt === MT.ociLayer) return "tar";
  return undefined;
}

/** Compressed bytes handed to the decompressor at a time (its output chunks stay under ~4 MiB). */
const GZIP_PIECE = 4096;

/** Splits chunks into pieces of at most `size` bytes. */
function pieces(size: number): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, ctl) {
      for (let off = 0; off < chunk.length; off += size) ctl.enqueue(chunk.subarray(off, off + size));
    },
  });
}

/** Most .o files one image may hold. */
export const MAX_OBJECTS = 256;

/** Object file name inside a layer, or undefined for entries that are not .o files at the root. */
function rootObjectName(name: string): string | undefined {
  const n = name.replace(/^\.\//, "").replace(/^\/+/, "");
  if (n.includes("/") || !n.endsWith(".o") || n === ".o" || n.length > 200) return undefined;
  return n;
}

/**
 * Streams a layer (gzip or plain tar) and hands every regular .o file at its root to `onObject` as a stream
 * of its bytes, which it must read or leave; nothing is held in memory. Fails with too_large past `maxBytes`
 * unpacked (a gzip bomb stops there) or past MAX_OBJECTS objects. Returns the unpacked size read.
 */
export async function readLayerObjects(
  layer: ReadableStream<Uint8Array>,
  kind: "gzip" | "tar",
  maxBytes: number,
  onObject: (name: string, data: AsyncIterable<Uint8Array>) => void | Promise<void>,
  what: string,
): Promise<number> {
  let stream = layer;
  if (kind === "gzip") {
    // Gzip expands up to ~1000 times: fed a piece at a time, the decompressor never makes a chunk larger
    // than ~1000 pieces, whatever the size of the chunks read from the network or disk.
    stream = stream.pipeThrough(pieces(GZIP_PIECE)).pipeThrough(
      new DecompressionStream("gzip") as unknown as ReadableWritablePair<Uint8Array, Uint8Array>,
    );
  }
  let total = 0;
  const counted = stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        total += chunk.length;
        if (total > maxBytes) {
          ctl.error(new ImageError("too_large", `${what}: more than ${maxBytes} bytes unpacked`));
          return;
        }
        ctl.enqueue(chunk);
      },
    }),
  );
  const extract = tar.extract();
  const src = Readable.fromWeb(counted as unknown as import("node:stream/web").ReadableStream<Uint8Array>);
  src.on("error", (e) => extract.destroy(e));
  src.pipe(extract);
  let objects = 0;
  try {
    for await (const entry of extract) {
      const name = entry.header.type === "file" ? rootObjectName(entry.header.name) : undefined;
      if (name && ++objects > MAX_OBJECTS) {
        throw new ImageError("too_large", `${what}: more than ${MAX_OBJECTS} .o files`);
      }
      if (name) await onObject(name, entry as AsyncIterable<Uint8Array>);
      for await (const _ of entry) { /* skip what onObject left (and entries that are not objects) */ }
    }
  } catch (e) {
    src.destroy();
    extract.destroy();
    if (e instanceof ImageError) throw e;
    const why = String((e as Error)?.message ?? e).slice(0, 200);
    const layer = kind === "gzip" ? "tar+gzip" : "tar";
    throw new ImageError("bad_image", `${what}: not a valid ${layer} layer: ${why}`, { cause: e });
  }
  return total;
}

export interface BuildInput {
  objects: { name: string; bytes: Uint8Array }[];
  programs: Record<string, string>;
  maps?: Record<string, string>;
  /** Also write the older single-program labels (when there is one program). */
  legacyLabels?: boolean;
  architecture?: string;
  /** RFC 3339 creation time; fixed by default so that builds are reproducible. */
  created?: string;
}

export interface BuiltImage {
  manifest: Uint8Array;
  manifestDigest: string;
  config: Uint8Array;
  configDigest: string;
  layer: Uint8Array;
  layerDigest: string;
}

const te = new TextEncoder();

/** Packs .o files into a bpfman-format OCI image (one tar+gzip layer, labels in the config). */
export async function buildImage(input: BuildInput): Promise<BuiltImage> {
  if (input.objects.length === 0) {
    throw new ImageError("bad_image", "no .o files given", { field: "objects" });
  }
  if (Object.keys(input.programs).length === 0) {
    throw new ImageError("bad_image", "no programs given (name=type)", { field: "programs" });
  }
  const pack = tar.pack();
  const chunks: Uint8Array[] = [];
  pack.on("data", (c: Uint8Array) => chunks.push(c));
  const ended = new Promise<void>((resolve, reject) => {
    pack.on("end", () => resolve());
    pack.on("error", reject);
  });
  for (const o of input.objects) {
    if (!rootObjectName(o.name)) {
      throw new ImageError(
        "bad_image",
        `object name ${JSON.stringify(o.name)} must be a plain file name ending .o`,
        {
          field: "objects",
        },
      );
    }
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        { name: o.name, size: o.bytes.length, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0, type: "file" },
        o.bytes as unknown as Buffer,
        (err?: Error | null) => err ? reject(err) : resolve(),
      )
    );
  }
  pack.finalize();
  await ended;
  const tarBytes = concat(chunks);
  const layer = new Uint8Array(
    await new Response(new Blob([tarBytes as BlobPart]).stream().pipeThrough(new CompressionStream("gzip")))
      .arrayBuffer(),
  );
  const labels: Record<string, string> = {
    [LABEL_PROGRAMS]: JSON.stringify(input.programs),
    [LABEL_MAPS]: JSON.stringify(input.maps ?? {}),
  };
  const progs = Object.entries(input.programs);
  if (input.legacyLabels && progs.length === 1) {
    labels[LABEL_PROGRAM_NAME] = progs[0][0];
    labels[LABEL_FUNCTION_NAME] = progs[0][0];
    labels[LABEL_PROGRAM_TYPE] = progs[0][1];
    labels[LABEL_FILENAME] = input.objects[0].name;
  }
  const created = input.created ?? "1970-01-01T00:00:00Z";
  const config = te.encode(JSON.stringify({
    created,
    architecture: input.architecture ?? "amd64",
    os: "linux",
    config: { Labels: labels },
    rootfs: { type: "layers", diff_ids: [`sha256:${createHash("sha256").update(tarBytes).digest("hex")}`] },
    history: [{ created, created_by: "bpfd image build" }],
  }));
  const configDigest = digestOf(config);
  const layerDigest = digestOf(layer);
  const manifest = te.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: { mediaType: MT.ociConfig, digest: configDigest, size: config.length },
    layers: [{ mediaType: MT.ociLayerGzip, digest: layerDigest, size: layer.length }],
  }));
  return { manifest, manifestDigest: digestOf(manifest), config, configDigest, layer, layerDigest };
}
