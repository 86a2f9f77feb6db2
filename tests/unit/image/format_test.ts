// bpfman's bytecode image format without a registry: media types, manifests and indexes, labels, and
// unpacking layers within limits (a gzip bomb stops at the limit without holding the layer in memory).
import assert from "node:assert/strict";
import { ImageError } from "../../../image/errors.ts";
import {
  buildImage,
  choosePlatform,
  hostPlatform,
  isLayerType,
  MAX_OBJECTS,
  parseIndex,
  parseJSON,
  parseManifest,
  readLabels,
  readLayerObjects,
  shown,
} from "../../../image/format.ts";
import { digestOf, MANIFEST_TYPES, MT } from "../../../image/registry.ts";
import { gzipBomb, layer } from "../../_layers.ts";

const te = new TextEncoder();
const D = `sha256:${"c".repeat(64)}`;

function fails(f: () => unknown, code: string, re: RegExp): void {
  assert.throws(f, (e) => {
    assert.ok(e instanceof ImageError);
    assert.equal(e.code, code);
    assert.match(e.message, re);
    return true;
  });
}

async function unpack(bytes: Uint8Array, kind: "gzip" | "tar", maxBytes: number) {
  const objects: Record<string, number> = {};
  const used = await readLayerObjects(
    new Blob([bytes as BlobPart]).stream(),
    kind,
    maxBytes,
    async (name, data) => {
      let n = 0;
      for await (const c of data) n += c.length;
      objects[name] = n;
    },
    "test layer",
  );
  return { objects, used };
}

Deno.test("media types: OCI and Docker tar layers are detected; others are not layers", () => {
  assert.equal(isLayerType(MT.ociLayerGzip), "gzip");
  assert.equal(isLayerType(MT.dockerLayerGzip), "gzip");
  assert.equal(isLayerType(MT.ociLayer), "tar");
  for (const mt of [MT.ociConfig, MT.cosignPayload, "application/vnd.oci.image.layer.v1.tar+zstd", ""]) {
    assert.equal(isLayerType(mt), undefined, mt);
  }
  assert.deepEqual(MANIFEST_TYPES, [MT.ociManifest, MT.dockerManifest, MT.ociIndex, MT.dockerList]);
  assert.equal(shown(MT.ociManifest), MT.ociManifest);
  assert.equal(shown("text/html; <script>"), "(not shown)");
  assert.equal(shown(undefined), "(none)");
});

Deno.test("manifests and indexes: schema 2 with descriptors, else bad_image without quoting the bytes", () => {
  const m = { schemaVersion: 2, config: { mediaType: MT.ociConfig, digest: D, size: 2 }, layers: [] };
  assert.deepEqual(parseManifest(te.encode(JSON.stringify(m)), "m").config.digest, D);
  fails(
    () => parseManifest(te.encode(JSON.stringify({ ...m, schemaVersion: 1 })), "m"),
    "bad_image",
    /schema 2/,
  );
  fails(
    () => parseManifest(te.encode(JSON.stringify({ ...m, layers: [{ digest: D }] })), "m"),
    "bad_image",
    /layer/,
  );
  fails(
    () => parseJSON(te.encode("<html>internal-secret</html>"), "manifest"),
    "bad_image",
    /^manifest is not JSON$/,
  );
  fails(() => parseIndex(te.encode("{}"), "index"), "bad_image", /not an image index/);
});

Deno.test("platform choice: the node's os/arch (and variant) from a list; a lone entry without platform is taken", () => {
  const entry = (arch?: string, variant?: string, digest = D) => ({
    mediaType: MT.ociManifest,
    digest,
    size: 1,
    ...(arch ? { platform: { os: "linux", architecture: arch, ...(variant ? { variant } : {}) } } : {}),
  });
  const amd64 = { os: "linux", architecture: "amd64" };
  const index = { schemaVersion: 2, manifests: [entry("arm64"), entry("amd64", undefined, digestOf("x"))] };
  assert.equal(choosePlatform(index, amd64, "i").digest, digestOf("x"));
  assert.equal(choosePlatform({ schemaVersion: 2, manifests: [entry()] }, amd64, "i").digest, D);
  const arm = {
    schemaVersion: 2,
    manifests: [entry("arm", "v6", digestOf("6")), entry("arm", "v7", digestOf("7")), entry("arm64", "v8")],
  };
  assert.equal(
    choosePlatform(arm, { os: "linux", architecture: "arm", variant: "v7" }, "i").digest,
    digestOf("7"),
  );
  assert.equal(choosePlatform(arm, hostPlatform("aarch64", "linux"), "i").digest, D);
  assert.deepEqual(hostPlatform("x86_64", "linux"), amd64);
  fails(
    () => choosePlatform({ schemaVersion: 2, manifests: [entry("s390x")] }, amd64, "i"),
    "not_found",
    /platform linux\/amd64 in the list \(has: linux\/s390x\)/,
  );
  fails(
    () => choosePlatform(arm, { os: "linux", architecture: "arm", variant: "v5" }, "i"),
    "not_found",
    /arm\/v5/,
  );
});

Deno.test("labels: io.ebpf.programs and maps, or the older single-program labels", () => {
  const config = (labels: Record<string, string>) => ({ config: { Labels: labels } });
  assert.deepEqual(
    readLabels(config({ "io.ebpf.programs": '{"a":"xdp"}', "io.ebpf.maps": '{"m":"array"}' }), {}, "x"),
    {
      programs: { a: "xdp" },
      maps: { m: "array" },
      filename: undefined,
    },
  );
  assert.deepEqual(
    readLabels(
      config({ "io.ebpf.bpf_function_name": "f", "io.ebpf.program_type": "tc", "io.ebpf.filename": "f.o" }),
      {},
      "x",
    ),
    { programs: { f: "tc" }, maps: {}, filename: "f.o" },
  );
  fails(() => readLabels(config({}), {}, "x"), "bad_image", /not a bytecode image/);
  fails(() => readLabels(config({ "io.ebpf.programs": "[1]" }), {}, "x"), "bad_image", /name -> type/);
});

Deno.test("layers: .o files at the root are handed over as streams; others and nested ones are skipped", async () => {
  const bytes = await layer([
    { name: "a.o", bytes: te.encode("aaa") },
    { name: "./b.o", bytes: te.encode("bb") },
    { name: "dir/c.o", bytes: te.encode("c") },
    { name: "readme.txt", bytes: te.encode("text") },
    { name: "d.o", type: "directory" },
  ]);
  const { objects, used } = await unpack(bytes, "gzip", 1 << 20);
  assert.deepEqual(objects, { "a.o": 3, "b.o": 2 });
  assert.ok(used > 0);
  const plain = await layer([{ name: "x.o", bytes: te.encode("x") }], { gzip: false });
  assert.deepEqual((await unpack(plain, "tar", 1 << 20)).objects, { "x.o": 1 });
  await assert.rejects(
    unpack(te.encode("not a layer"), "gzip", 1 << 20),
    (e) => e instanceof ImageError && e.code === "bad_image",
  );
});

Deno.test("layers: a gzip bomb stops at the unpacked limit, handed over in small pieces", async () => {
  const bomb = await gzipBomb(200 << 20);
  assert.ok(bomb.length < 400 << 10, `bomb is ${bomb.length} bytes compressed`);
  let largest = 0;
  let received = 0;
  await assert.rejects(
    readLayerObjects(new Blob([bomb as BlobPart]).stream(), "gzip", 64 << 20, async (_name, data) => {
      for await (const c of data) {
        largest = Math.max(largest, c.length);
        received += c.length;
      }
    }, "bomb"),
    (e) => {
      assert.ok(e instanceof ImageError);
      assert.equal(e.code, "too_large");
      assert.match(e.message, /^bomb: more than 67108864 bytes unpacked$/);
      return true;
    },
  );
  assert.ok(received <= 64 << 20, `${received} bytes handed over`);
  assert.ok(largest <= 8 << 20, `a chunk of ${largest} bytes: the layer is streamed in small pieces`);
});

Deno.test("layers: more .o files than MAX_OBJECTS is too_large", async () => {
  const entries = Array.from(
    { length: MAX_OBJECTS + 1 },
    (_, i) => ({ name: `p${i}.o`, bytes: te.encode("x") }),
  );
  await assert.rejects(
    unpack(await layer(entries), "gzip", 1 << 30),
    (e) => e instanceof ImageError && e.code === "too_large",
  );
});

Deno.test("buildImage: one tar+gzip layer whose objects unpack again, labels in the config", async () => {
  const img = await buildImage({
    objects: [{ name: "x.o", bytes: te.encode("ELF") }],
    programs: { f: "xdp" },
  });
  const manifest = parseManifest(img.manifest, "built");
  assert.equal(manifest.layers[0].mediaType, MT.ociLayerGzip);
  assert.equal(manifest.layers[0].digest, digestOf(img.layer));
  assert.deepEqual((await unpack(img.layer, "gzip", 1 << 20)).objects, { "x.o": 3 });
  assert.deepEqual(readLabels(parseJSON(img.config, "config"), {}, "x").programs, { f: "xdp" });
});
