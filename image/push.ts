/**
 * Pushing images to a registry (from an OCI layout, as `bpfd image push` does) and attaching key-based
 * cosign signatures (`bpfd image sign`): the .sig image cosign writes, so cosign and bpfd read each
 * other's signatures.
 *
 * @example
 * ```ts
 * await pushImage(client, parseReference("registry.example:5000/bytecode/xdp:v1"), image);
 * ```
 * @module
 */
import { Buffer } from "node:buffer";
import { createPrivateKey, sign as cryptoSign } from "node:crypto";
import { ANN_SIGNATURE, SIMPLESIGNING_TYPE } from "./cosign.ts";
import { ImageError } from "./errors.ts";
import { type Descriptor, parseManifest } from "./format.ts";
import type { LayoutImage } from "./layout.ts";
import type { Reference } from "./reference.ts";
import { digestOf, MT, type RegistryClient } from "./registry.ts";

export interface PushProgress {
  digest: string;
  size: number;
  state: "exists" | "uploaded";
}

/** Pushes the blobs then the manifest of a layout image under the reference's tag (or digest). */
export async function pushImage(
  client: RegistryClient,
  ref: Reference,
  image: LayoutImage,
  onBlob?: (p: PushProgress) => void,
): Promise<string> {
  for (const b of image.blobs) {
    const state = await client.pushBlob(ref.repository, b.digest, b.bytes);
    onBlob?.({ digest: b.digest, size: b.bytes.length, state });
  }
  const target = ref.tag ?? ref.digest!;
  if (ref.digest && ref.digest !== image.manifest.digest) {
    throw new ImageError(
      "digest_mismatch",
      `reference names ${ref.digest}, the image is ${image.manifest.digest}`,
    );
  }
  return await client.pushManifest(ref.repository, target, image.manifest.mediaType, image.manifest.bytes);
}

/** The simplesigning payload cosign signs for an image digest. */
export function simpleSigningPayload(dockerReference: string, digest: string): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({
    critical: {
      identity: { "docker-reference": dockerReference },
      image: { "docker-manifest-digest": digest },
      type: SIMPLESIGNING_TYPE,
    },
    optional: null,
  }));
}

/** Signs with an ECDSA P-256 private key (PEM), SHA-256, DER signature, as cosign does. */
export function signPayload(keyPem: string, payload: Uint8Array): Uint8Array {
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw new ImageError("bad_config", `signing key: not a usable private key: ${(e as Error).message}`, {
      field: "key",
    });
  }
  if (key.asymmetricKeyType !== "ec") {
    throw new ImageError("bad_config", "signing key: ECDSA P-256 expected", { field: "key" });
  }
  return new Uint8Array(cryptoSign("sha256", payload, key));
}

/**
 * Adds a signature layer to the image's cosign .sig manifest (creating it if needed) and pushes it.
 * `annotations` are added beside the signature (certificate, chain and Rekor bundle for keyless).
 */
export async function attachSignature(
  client: RegistryClient,
  repository: string,
  digest: string,
  payload: Uint8Array,
  signature: Uint8Array,
  annotations: Record<string, string> = {},
): Promise<string> {
  const tag = `sha256-${digest.slice(7)}.sig`;
  let layers: Descriptor[] = [];
  try {
    const existing = await client.getManifest(repository, tag, [MT.ociManifest]);
    layers = parseManifest(existing.bytes, tag).layers;
  } catch (e) {
    if (!(e instanceof ImageError && e.code === "not_found")) throw e;
  }
  const payloadDigest = digestOf(payload);
  await client.pushBlob(repository, payloadDigest, payload);
  layers = layers.filter((l) => l.digest !== payloadDigest || l.annotations?.[ANN_SIGNATURE] !== undefined);
  layers.push({
    mediaType: MT.cosignPayload,
    digest: payloadDigest,
    size: payload.length,
    annotations: { [ANN_SIGNATURE]: Buffer.from(signature).toString("base64"), ...annotations },
  });
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: "",
    created: "0001-01-01T00:00:00Z",
    history: [{ created: "0001-01-01T00:00:00Z" }],
    os: "",
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
    config: {},
  }));
  const configDigest = digestOf(config);
  await client.pushBlob(repository, configDigest, config);
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: { mediaType: MT.ociConfig, size: config.length, digest: configDigest },
    layers,
  }));
  return await client.pushManifest(repository, tag, MT.ociManifest, manifest);
}
