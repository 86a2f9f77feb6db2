/**
 * OCI image layout directories (oci-layout, index.json, blobs/sha256/...): what `bpfd image build` writes
 * and `bpfd image push` reads; skopeo and umoci read and write the same.
 *
 * @example
 * ```ts
 * const image = await readLayout("./xdp-layout", "v1");
 * ```
 * @module
 */
import { join } from "node:path";
import { ImageError } from "./errors.ts";
import { type BuiltImage, type Descriptor, parseIndex, parseJSON, parseManifest } from "./format.ts";
import { assertDigest, digestOf, MT } from "./registry.ts";

const REF_NAME = "org.opencontainers.image.ref.name";

async function writeBlob(dir: string, bytes: Uint8Array): Promise<string> {
  const digest = digestOf(bytes);
  const path = join(dir, "blobs", "sha256", digest.slice(7));
  await Deno.mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  await Deno.writeFile(path, bytes);
  return digest;
}

/** Writes (or adds to) an OCI layout with the image under `tag`. */
export async function writeLayout(dir: string, image: BuiltImage, tag: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeBlob(dir, image.layer);
  await writeBlob(dir, image.config);
  await writeBlob(dir, image.manifest);
  let manifests: Descriptor[] = [];
  try {
    manifests = parseIndex(await Deno.readFile(join(dir, "index.json")), "index.json").manifests;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  manifests = manifests.filter((m) => m.annotations?.[REF_NAME] !== tag);
  manifests.push({
    mediaType: MT.ociManifest,
    digest: image.manifestDigest,
    size: image.manifest.length,
    annotations: { [REF_NAME]: tag },
  });
  await Deno.writeTextFile(
    join(dir, "index.json"),
    JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests }),
  );
}

export interface LayoutImage {
  manifest: { mediaType: string; digest: string; bytes: Uint8Array };
  blobs: { digest: string; bytes: Uint8Array }[];
}

/** Reads one image from a layout: by tag (ref.name), or the only one there is. Blobs are verified. */
export async function readLayout(dir: string, tag?: string): Promise<LayoutImage> {
  let indexBytes: Uint8Array;
  try {
    indexBytes = await Deno.readFile(join(dir, "index.json"));
  } catch (e) {
    throw new ImageError("bad_image", `${dir}: not an OCI layout (no index.json): ${(e as Error).message}`, {
      field: "layout",
    });
  }
  const index = parseIndex(indexBytes, `${dir}/index.json`);
  const cands = tag ? index.manifests.filter((m) => m.annotations?.[REF_NAME] === tag) : index.manifests;
  if (cands.length !== 1) {
    const tags = index.manifests.map((m) => m.annotations?.[REF_NAME] ?? m.digest).join(", ");
    throw new ImageError(
      "not_found",
      `${dir}: ${tag ? `no image tagged ${tag}` : "more than one image, name a tag"} (has: ${tags})`,
      { field: "layout" },
    );
  }
  const read = async (digest: string): Promise<Uint8Array> => {
    const hex = assertDigest(digest, dir);
    const bytes = await Deno.readFile(join(dir, "blobs", "sha256", hex));
    if (digestOf(bytes) !== digest) {
      throw new ImageError("digest_mismatch", `${dir}: blob ${digest} does not hash to its name`, {
        field: "layout",
      });
    }
    return bytes;
  };
  const d = cands[0];
  const mbytes = await read(d.digest);
  const m = parseManifest(mbytes, `${dir} manifest`);
  const blobs = [];
  for (const b of [m.config, ...m.layers]) blobs.push({ digest: b.digest, bytes: await read(b.digest) });
  const mediaType = m.mediaType ??
    (parseJSON(mbytes, "manifest") as { mediaType?: string }).mediaType ?? d.mediaType;
  return { manifest: { mediaType, digest: d.digest, bytes: mbytes }, blobs };
}
