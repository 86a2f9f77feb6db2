// Shared by the image tests: build and push test images to a registry, make stores on temp caches.
import assert from "node:assert/strict";
import { fileURLToPath as fromFileUrl } from "node:url";
import { buildImage, type BuildInput } from "../../../image/format.ts";
import { type LayoutImage } from "../../../image/layout.ts";
import { attachSignature, pushImage, simpleSigningPayload } from "../../../image/push.ts";
import { parseReference } from "../../../image/reference.ts";
import type { RegistryClient } from "../../../image/registry.ts";
import type { ImageStoreConfig } from "../../../model/image.ts";
import { ImageStore } from "../../../image/store.ts";
import type { TestRegistry } from "../../_registry.ts";

export const XDP_OBJECT = fromFileUrl(new URL("../../../bytecode/build/xdp_counter.bpf.o", import.meta.url));
export const TC_OBJECT = fromFileUrl(new URL("../../../bytecode/build/tc_counter.bpf.o", import.meta.url));

export function storeFor(
  reg: TestRegistry,
  cacheDir: string,
  extra: Partial<ImageStoreConfig> = {},
): ImageStore {
  return new ImageStore({
    cacheDir,
    insecureRegistries: reg.caFile ? [] : [reg.host],
    caFiles: reg.caFile ? [reg.caFile] : [],
    timeoutMs: 10_000,
    ...extra,
  });
}

export function asLayout(img: Awaited<ReturnType<typeof buildImage>>): LayoutImage {
  return {
    manifest: {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: img.manifestDigest,
      bytes: img.manifest,
    },
    blobs: [{ digest: img.configDigest, bytes: img.config }, { digest: img.layerDigest, bytes: img.layer }],
  };
}

/** Builds an image of the XDP counter (or `input`) and pushes it as `repoTag`; returns its digest. */
export async function pushTestImage(
  store: ImageStore,
  reg: TestRegistry,
  repoTag: string,
  input: Partial<BuildInput> = {},
  auth?: { username: string; password: string },
): Promise<string> {
  const img = await buildImage({
    objects: [{ name: "xdp_counter.bpf.o", bytes: await Deno.readFile(XDP_OBJECT) }],
    programs: { xdp_counter: "xdp" },
    maps: { xdp_packets: "array" },
    ...input,
  });
  const url = `${reg.host}/${repoTag}`;
  const ref = parseReference(url);
  const client = await store.client(ref, { url, auth });
  return await pushImage(client, ref, asLayout(img));
}

export async function clientFor(store: ImageStore, url: string): Promise<RegistryClient> {
  return await store.client(parseReference(url), { url });
}

/** Signs `digest` of `repo` with `sign`, attaching extra annotations (certificate, bundle...). */
export async function signImage(
  store: ImageStore,
  reg: TestRegistry,
  repo: string,
  digest: string,
  sign: (payload: Uint8Array) => Uint8Array,
  annotations: (payload: Uint8Array, sig: Uint8Array) => Record<string, string> = () => ({}),
  payload = simpleSigningPayload(`${reg.host}/${repo}`, digest),
): Promise<void> {
  const client = await clientFor(store, `${reg.host}/${repo}`);
  const sig = sign(payload);
  await attachSignature(client, repo, digest, payload, sig, annotations(payload, sig));
}

/** Files in the cache other than its empty directories. */
export async function cacheFiles(store: ImageStore): Promise<string[]> {
  return await store.cache.listFiles();
}

export async function assertNothingCached(store: ImageStore): Promise<void> {
  assert.deepEqual(await cacheFiles(store), [], "a failed pull left files in the cache");
}

/** Awaits `p`, expecting an ImageError with `code` whose message matches `re`. */
export async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp): Promise<Error> {
  try {
    await p;
  } catch (e) {
    const err = e as Error & { code?: string };
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    if (re) assert.match(err.message, re);
    return err;
  }
  assert.fail(`expected an error with code ${code}, but it succeeded`);
}
