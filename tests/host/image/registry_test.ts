// The image client against Debian's docker-registry on loopback: `bpfd image build|push|pull`, pull
// policies, the cache re-verified on read, auth (htpasswd, bearer tokens, docker config.json), TLS with a
// test CA, manifest lists and Docker media types, interop with skopeo and umoci, and bad input (each a
// clear error, nothing left in the cache).
import assert from "node:assert/strict";
import { join } from "node:path";
import { runImageCli } from "../../../cli/image.ts";
import { buildImage } from "../../../image/format.ts";
import { digestOf, MT } from "../../../image/registry.ts";
import { run, startRegistry, type TestRegistry } from "../../_registry.ts";
import {
  asLayout,
  assertNothingCached,
  cacheFiles,
  clientFor,
  pushTestImage,
  rejectsWith,
  storeFor,
  TC_OBJECT,
  XDP_OBJECT,
} from "./_helpers.ts";

async function withRegistry(
  opts: Parameters<typeof startRegistry>[0],
  fn: (reg: TestRegistry, dir: string) => Promise<void>,
): Promise<void> {
  const reg = await startRegistry(opts);
  const dir = await Deno.makeTempDir({ prefix: "bpfd-image-test-" });
  try {
    await fn(reg, dir);
  } finally {
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs the CLI in-process, capturing what it prints. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await runImageCli(args);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("bpfd image build + push + pull; skopeo reads what bpfd built; pull policies", async () => {
  await withRegistry({}, async (reg, dir) => {
    const layout = join(dir, "layout");
    const built = await cli([
      "build",
      "-o",
      `${layout}:v1`,
      "--program",
      "xdp_counter=xdp",
      "--map",
      "xdp_packets=array",
      XDP_OBJECT,
    ]); // deno-fmt-ignore
    assert.equal(built.code, 0, built.err);
    const layoutDigest = built.out.split(" ")[1];

    // skopeo reads the layout and, after the push, the registry image, with the labels intact.
    const fromLayout = JSON.parse(await run("skopeo", ["inspect", `oci:${layout}:v1`]));
    assert.equal(fromLayout.Labels["io.ebpf.programs"], '{"xdp_counter":"xdp"}');
    assert.equal(fromLayout.Labels["io.ebpf.maps"], '{"xdp_packets":"array"}');
    assert.equal(fromLayout.Layers.length, 1);

    const pushed = await cli(["push", `${layout}:v1`, `${reg.host}/bytecode/xdp:v1`, "--insecure", reg.host]);
    assert.equal(pushed.code, 0, pushed.err);
    assert.equal(pushed.out, `${reg.host}/bytecode/xdp:v1@${layoutDigest}`);
    assert.match(pushed.err, /uploaded sha256:/);
    const inspect = JSON.parse(
      await run("skopeo", ["inspect", "--tls-verify=false", `docker://${reg.host}/bytecode/xdp:v1`]),
    );
    assert.equal(inspect.Digest, layoutDigest);
    assert.equal(inspect.Labels["io.ebpf.programs"], '{"xdp_counter":"xdp"}');
    assert.equal(inspect.Architecture, "amd64");
    const raw = JSON.parse(
      await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/bytecode/xdp:v1`]),
    );
    assert.equal(raw.layers[0].mediaType, MT.ociLayerGzip);

    // A second push uploads nothing new.
    const again = await cli(["push", `${layout}:v1`, `${reg.host}/bytecode/xdp:v1`, "--insecure", reg.host]);
    assert.equal(again.code, 0);
    assert.doesNotMatch(again.err, /uploaded/);

    const cache = join(dir, "cache");
    const pull = await cli(["pull", `${reg.host}/bytecode/xdp:v1`, "--insecure", reg.host, "--cache", cache]);
    assert.equal(pull.code, 0, pull.err);
    assert.match(pull.out, /program\s+xdp_counter \(xdp\)/);
    assert.match(pull.out, /map\s+xdp_packets \(array\)/);
    assert.match(pull.err, /layer\s+sha256:.* \/ /, "progress shows the layer download");

    const store = storeFor(reg, cache);
    const first = await store.pull({ url: `${reg.host}/bytecode/xdp:v1` });
    assert.equal(first.fromCache, true, "IfNotPresent serves the cached image");
    assert.equal(first.digest, layoutDigest);
    assert.deepEqual(await Deno.readFile(first.objectPath), await Deno.readFile(XDP_OBJECT));
    assert.deepEqual(first.programs, { xdp_counter: "xdp" });

    // A new image under the same tag: IfNotPresent keeps the cached one, Always fetches the new one.
    const d2 = await pushTestImage(store, reg, "bytecode/xdp:v1", {
      objects: [{ name: "tc_counter.bpf.o", bytes: await Deno.readFile(TC_OBJECT) }],
      programs: { tc_counter: "tc" },
      maps: { tc_packets: "array" },
    });
    assert.equal((await store.pull({ url: `${reg.host}/bytecode/xdp:v1` })).digest, layoutDigest);
    const always = await store.pull({ url: `${reg.host}/bytecode/xdp:v1`, pullPolicy: "Always" });
    assert.equal(always.digest, d2);
    assert.equal(always.fromCache, false);
    assert.deepEqual(always.programs, { tc_counter: "tc" });
    // By digest, the first image is still there.
    const byDigest = await store.pull({
      url: `${reg.host}/bytecode/xdp@${layoutDigest}`,
      pullPolicy: "Never",
    });
    assert.deepEqual(byDigest.programs, { xdp_counter: "xdp" });
    // Never with an image that is not cached.
    await rejectsWith(
      store.pull({ url: `${reg.host}/bytecode/other:v1`, pullPolicy: "Never" }),
      "not_cached",
      /not in the cache and pullPolicy is Never/,
    );
    // The registry goes away: cached images still load (IfNotPresent, Never), Always cannot.
    await reg.stop();
    assert.equal((await store.pull({ url: `${reg.host}/bytecode/xdp:v1` })).digest, d2);
    await rejectsWith(
      store.pull({ url: `${reg.host}/bytecode/xdp:v1`, pullPolicy: "Always" }),
      "registry_unreachable",
      new RegExp(`registry ${reg.host} unreachable`),
    );
  });
});

Deno.test("cache re-verified on read: a changed object or blob is refused", async () => {
  await withRegistry({}, async (reg, dir) => {
    const store = storeFor(reg, join(dir, "cache"));
    await pushTestImage(store, reg, "cache/xdp:v1");
    const pulled = await store.pull({ url: `${reg.host}/cache/xdp:v1` });
    const original = await Deno.readFile(pulled.objectPath);
    const tampered = original.slice();
    tampered[tampered.length - 1] ^= 0xff;
    await Deno.writeFile(pulled.objectPath, tampered);
    await rejectsWith(
      store.pull({ url: `${reg.host}/cache/xdp:v1`, pullPolicy: "Never" }),
      "cache_corrupt",
      /object .*xdp_counter.bpf.o was changed on disk/,
    );
    await Deno.writeFile(pulled.objectPath, original);
    assert.equal(
      (await store.pull({ url: `${reg.host}/cache/xdp:v1`, pullPolicy: "Never" })).fromCache,
      true,
    );
    // The config blob (labels) changed on disk.
    const manifest = JSON.parse(new TextDecoder().decode(await store.cache.readBlob(pulled.digest)));
    const configPath = store.cache.blobPath(manifest.config.digest);
    const config = JSON.parse(await Deno.readTextFile(configPath));
    config.config.Labels["io.ebpf.programs"] = '{"evil":"xdp"}';
    await Deno.writeTextFile(configPath, JSON.stringify(config));
    await rejectsWith(
      store.pull({ url: `${reg.host}/cache/xdp:v1`, pullPolicy: "IfNotPresent" }),
      "cache_corrupt",
      /was changed on disk/,
    );
    // Always re-fetches, and a good pull repairs the cache.
    assert.equal(
      (await store.pull({ url: `${reg.host}/cache/xdp:v1`, pullPolicy: "Always" })).fromCache,
      false,
    );
  });
});

Deno.test("bad input: clear errors and nothing left in the cache", async (t) => {
  await withRegistry({}, async (reg, dir) => {
    let n = 0;
    const fresh = () => storeFor(reg, join(dir, `cache-${n++}`), { maxManifestBytes: 64 * 1024 });
    const pusher = fresh();
    const digest = await pushTestImage(pusher, reg, "bad/xdp:v1");

    await t.step("unknown image and unknown tag", async () => {
      const s = fresh();
      await rejectsWith(s.pull({ url: `${reg.host}/bad/nothing:v1` }), "not_found", /not found/);
      await rejectsWith(
        s.pull({ url: `${reg.host}/bad/xdp:nope` }),
        "not_found",
        /answered 404 for manifest .*: not found$/,
      );
      await assertNothingCached(s);
    });

    await t.step("bad reference syntax names the field", async () => {
      const s = fresh();
      for (
        const [url, re] of [
          ["", /must not be empty/],
          ["https://example.com/x:y", /no scheme/],
          [`${reg.host}/Upper/Case:v1`, /repository "Upper\/Case" is not valid/],
          [`${reg.host}/x:bad tag`, /white space/],
          [`${reg.host}/x@sha256:1234`, /digest "sha256:1234"/],
          [`${reg.host}/x:${"t".repeat(200)}`, /tag/],
        ] as const
      ) {
        const e = await rejectsWith(s.pull({ url }), "bad_reference", re);
        assert.equal((e as { field?: string }).field, "url");
      }
      await rejectsWith(
        s.pull({ url: `${reg.host}/x:v1`, pullPolicy: "Sometimes" as "Always" }),
        "bad_reference",
        /pullPolicy/,
      );
      await assertNothingCached(s);
    });

    await t.step("registry down", async () => {
      const s = fresh();
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (l.addr as Deno.NetAddr).port;
      l.close();
      const host = `127.0.0.1:${port}`;
      const down = storeFor({ ...reg, host }, join(dir, `cache-${n++}`));
      await rejectsWith(down.pull({ url: `${host}/bad/xdp:v1` }), "registry_unreachable", /unreachable/);
      await assertNothingCached(down);
      await assertNothingCached(s);
    });

    await t.step("corrupted blob in the registry's storage", async () => {
      const s = fresh();
      const manifest = JSON.parse(new TextDecoder().decode(
        (await (await clientFor(s, `${reg.host}/bad/xdp`))
          .getManifest("bad/xdp", digest)).bytes,
      ));
      const layerFile = reg.blobFile(manifest.layers[0].digest);
      const bytes = await Deno.readFile(layerFile);
      bytes[bytes.length - 10] ^= 0xff;
      await Deno.writeFile(layerFile, bytes);
      await rejectsWith(
        s.pull({ url: `${reg.host}/bad/xdp:v1` }),
        "digest_mismatch",
        /content hashes to sha256:/,
      );
      await assertNothingCached(s);
    });

    await t.step("huge manifest", async () => {
      const s = fresh();
      const client = await clientFor(pusher, `${reg.host}/bad/huge`);
      const img = await buildImage({
        objects: [{ name: "x.o", bytes: await Deno.readFile(XDP_OBJECT) }],
        programs: { xdp_counter: "xdp" },
      });
      for (const b of asLayout(img).blobs) await client.pushBlob("bad/huge", b.digest, b.bytes);
      const m = JSON.parse(new TextDecoder().decode(img.manifest));
      m.annotations = { padding: "x".repeat(200 * 1024) };
      const bytes = new TextEncoder().encode(JSON.stringify(m));
      await client.pushManifest("bad/huge", "v1", MT.ociManifest, bytes);
      await rejectsWith(
        s.pull({ url: `${reg.host}/bad/huge:v1` }),
        "too_large",
        /more than the limit of 65536/,
      );
      await assertNothingCached(s);
    });

    await t.step("not a bytecode image: no labels, no .o", async () => {
      const s = fresh();
      const client = await clientFor(pusher, `${reg.host}/bad/plain`);
      const config = new TextEncoder().encode(
        JSON.stringify({ architecture: "amd64", os: "linux", config: {} }),
      );
      const img = await buildImage({
        objects: [{ name: "x.o", bytes: new Uint8Array([1]) }],
        programs: { a: "xdp" },
      });
      await client.pushBlob("bad/plain", digestOf(config), config);
      await client.pushBlob("bad/plain", img.layerDigest, img.layer);
      const manifest = new TextEncoder().encode(JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.ociManifest,
        config: { mediaType: MT.ociConfig, digest: digestOf(config), size: config.length },
        layers: [{ mediaType: MT.ociLayerGzip, digest: img.layerDigest, size: img.layer.length }],
      }));
      await client.pushManifest("bad/plain", "v1", MT.ociManifest, manifest);
      await rejectsWith(s.pull({ url: `${reg.host}/bad/plain:v1` }), "bad_image", /not a bytecode image/);
      await assertNothingCached(s);
    });
  });
});

Deno.test("auth: htpasswd, bearer token, docker config.json; 401 with a clear message", async (t) => {
  for (const auth of ["htpasswd", "token"] as const) {
    await t.step(auth, async () => {
      await withRegistry({ auth }, async (reg, dir) => {
        const creds = { username: "tester", password: "secret" };
        const store = storeFor(reg, join(dir, "c1"));
        const digest = await pushTestImage(store, reg, "auth/xdp:v1", {}, creds);
        const pulled = await store.pull({ url: `${reg.host}/auth/xdp:v1`, auth: creds });
        assert.equal(pulled.digest, digest);
        if (auth === "token") assert.ok(reg.tokenRequests() > 0, "the token server was asked");

        const none = storeFor(reg, join(dir, "c2"));
        const e = await rejectsWith(
          none.pull({ url: `${reg.host}/auth/xdp:v1` }),
          "unauthorized",
          /requires credentials and none were given/,
        );
        assert.equal((e as { field?: string }).field, "auth");
        await rejectsWith(
          none.pull({ url: `${reg.host}/auth/xdp:v1`, auth: { username: "tester", password: "wrong" } }),
          "unauthorized",
          /refused the credentials of user tester/,
        );
        await assertNothingCached(none);

        // Credentials from a docker config.json: in the request, or the store's auth file.
        const dockerConfig = JSON.stringify({ auths: { [reg.host]: { auth: btoa("tester:secret") } } });
        assert.equal(
          (await none.pull({ url: `${reg.host}/auth/xdp:v1`, auth: { dockerConfigJson: dockerConfig } }))
            .digest,
          digest,
        );
        const authFile = join(dir, "config.json");
        await Deno.writeTextFile(authFile, dockerConfig);
        const viaFile = storeFor(reg, join(dir, "c3"), { authFile });
        assert.equal((await viaFile.pull({ url: `${reg.host}/auth/xdp:v1` })).digest, digest);
        await rejectsWith(
          none.pull({ url: `${reg.host}/auth/xdp:v1`, auth: { dockerConfigJson: "{not json" } }),
          "bad_auth",
          /auth.dockerConfigJson: not JSON/,
        );
      });
    });
  }
});

Deno.test("TLS with a test CA; an untrusted certificate is refused", async () => {
  await withRegistry({ tls: true, auth: "htpasswd" }, async (reg, dir) => {
    const creds = { username: "tester", password: "secret" };
    const store = storeFor(reg, join(dir, "c1"));
    const digest = await pushTestImage(store, reg, "tls/xdp:v1", {}, creds);
    assert.equal((await store.pull({ url: `${reg.host}/tls/xdp:v1`, auth: creds })).digest, digest);
    const noCa = storeFor({ ...reg, caFile: "/nonexistent" }, join(dir, "c2"), { caFiles: [] });
    // One message for every connection failure (no port scanning through it); the cause keeps the detail.
    const e = await rejectsWith(
      noCa.pull({ url: `${reg.host}/tls/xdp:v1`, auth: creds }),
      "registry_unreachable",
      /unreachable \(no connection, TLS failure or no answer within/,
    );
    assert.match(String((e.cause as Error)?.cause ?? e.cause), /certificate|UnknownIssuer/i);
    await assertNothingCached(noCa);
    // Plain HTTP is used only for registries marked insecure.
    const plain = storeFor(reg, join(dir, "c3"), { caFiles: [], insecureRegistries: [reg.host] });
    await rejectsWith(plain.pull({ url: `${reg.host}/tls/xdp:v1`, auth: creds }), "registry_error");
    await assertNothingCached(plain);
  });
});

Deno.test("interop: manifest list, Docker media types (skopeo copy), an image assembled by umoci", async () => {
  await withRegistry({}, async (reg, dir) => {
    const store = storeFor(reg, join(dir, "cache"));
    const client = await clientFor(store, `${reg.host}/interop/multi`);

    // A manifest list with arm64 and amd64 images: the amd64 one is chosen.
    const amd = await buildImage({
      objects: [{ name: "xdp_counter.bpf.o", bytes: await Deno.readFile(XDP_OBJECT) }],
      programs: { xdp_counter: "xdp" },
    });
    const arm = await buildImage({
      objects: [{ name: "tc_counter.bpf.o", bytes: await Deno.readFile(TC_OBJECT) }],
      programs: { tc_counter: "tc" },
      architecture: "arm64",
    });
    for (const img of [amd, arm]) {
      for (const b of asLayout(img).blobs) await client.pushBlob("interop/multi", b.digest, b.bytes);
      await client.pushManifest("interop/multi", img.manifestDigest, MT.ociManifest, img.manifest);
    }
    const index = new TextEncoder().encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.ociIndex,
      manifests: [
        {
          mediaType: MT.ociManifest,
          digest: arm.manifestDigest,
          size: arm.manifest.length,
          platform: { os: "linux", architecture: "arm64" },
        },
        {
          mediaType: MT.ociManifest,
          digest: amd.manifestDigest,
          size: amd.manifest.length,
          platform: { os: "linux", architecture: "amd64" },
        },
      ],
    })); // deno-fmt-ignore
    await client.pushManifest("interop/multi", "v1", MT.ociIndex, index);
    const multi = await store.pull({ url: `${reg.host}/interop/multi:v1` });
    assert.equal(multi.digest, amd.manifestDigest);
    assert.deepEqual(multi.programs, { xdp_counter: "xdp" });

    // skopeo converts bpfd's OCI image to Docker schema 2 media types; bpfd reads those.
    const layout = join(dir, "layout");
    assert.equal(
      (await cli(["build", "-o", `${layout}:v2`, "--program", "xdp_counter=xdp", XDP_OBJECT])).code,
      0,
    );
    await run("skopeo", [
      "copy",
      "--quiet",
      "--format",
      "v2s2",
      "--dest-tls-verify=false",
      `oci:${layout}:v2`,
      `docker://${reg.host}/interop/docker:v2`,
    ]); // deno-fmt-ignore
    const raw = JSON.parse(
      await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/interop/docker:v2`]),
    );
    assert.equal(raw.mediaType, MT.dockerManifest);
    assert.equal(raw.layers[0].mediaType, MT.dockerLayerGzip);
    const docker = await store.pull({ url: `${reg.host}/interop/docker:v2` });
    assert.deepEqual(docker.programs, { xdp_counter: "xdp" });

    // umoci assembles an image with bpfman's older single-program labels; skopeo pushes it.
    const u = join(dir, "umoci");
    const bundle = join(dir, "bundle");
    await run("umoci", ["init", "--layout", u]);
    await run("umoci", ["new", "--image", `${u}:v1`]);
    await run("umoci", ["unpack", "--image", `${u}:v1`, bundle]);
    await Deno.copyFile(XDP_OBJECT, join(bundle, "rootfs", "bpf.o"));
    await run("umoci", ["repack", "--image", `${u}:v1`, bundle]);
    await run("umoci", [
      "config",
      "--image",
      `${u}:v1`,
      "--config.label",
      "io.ebpf.program_name=xdp_counter",
      "--config.label",
      "io.ebpf.bpf_function_name=xdp_counter",
      "--config.label",
      "io.ebpf.program_type=xdp",
      "--config.label",
      "io.ebpf.filename=bpf.o",
    ]); // deno-fmt-ignore
    await run("skopeo", [
      "copy", "--quiet", "--dest-tls-verify=false", `oci:${u}:v1`, `docker://${reg.host}/interop/umoci:v1`,
    ]);
    const umoci = await store.pull({ url: `${reg.host}/interop/umoci:v1` });
    assert.deepEqual(umoci.programs, { xdp_counter: "xdp" });
    assert.ok(umoci.objectPath.endsWith("/bpf.o"));
    assert.deepEqual(await Deno.readFile(umoci.objectPath), await Deno.readFile(XDP_OBJECT));
    assert.ok((await cacheFiles(store)).length > 0);
  });
});
