// Bytecode from an image into the kernel: `bpfd image push` to a registry with auth, then the load
// function with bytecode.image pulls, verifies the signature and loads; the XDP counter on a veth counts
// real pings; the program record names the image and digest. Bad image input through load is a clear
// 4xx naming bytecode.image.*, and leaves nothing in the kernel or the cache.
import assert from "node:assert/strict";
import { join } from "node:path";
import { invoke } from "../../../functions/_define.ts";
import { FUNCTIONS } from "../../../functions/mod.ts";
import { runImageCli } from "../../../cli/image.ts";
import { keyFingerprint } from "../../../image/cosign.ts";
import type { ImageStore } from "../../../image/store.ts";
import { VethPair } from "../../_netns.ts";
import { startRegistry } from "../../_registry.ts";
import {
  kernelSnapshot,
  leftovers,
  readCounter,
  startTestRuntime,
  type TestRuntime,
} from "../../_runtime.ts";
import { newKeyPair } from "./_sigstore.ts";
import { assertNothingCached, storeFor, XDP_OBJECT } from "./_helpers.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** Calls a function in-process with the runtime's ctx plus this test's image store. */
async function call(rt: TestRuntime, images: ImageStore, name: string, input: unknown): Promise<Json> {
  const fn = await FUNCTIONS.get(name)?.();
  if (!fn) throw new Error(`no function ${name}`);
  return invoke(fn, input, { ...rt.node.ctxFor({ user: "test", via: "in-process" }), images });
}

async function quiet<T>(f: () => Promise<T>): Promise<T> {
  const log = console.log;
  const error = console.error;
  console.log = console.error = () => {};
  try {
    return await f();
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("image pushed by bpfd image push, signed, pulled by load: XDP counter counts pings", async () => {
  const before = kernelSnapshot();
  const reg = await startRegistry({ auth: "htpasswd" });
  const dir = await Deno.makeTempDir({ prefix: "bpfd-image-load-" });
  try {
    await using net = await VethPair.create();
    await using rt = await startTestRuntime();
    const key = newKeyPair();
    await Deno.writeTextFile(join(dir, "cosign.key"), key.privatePem);
    const auth = ["--insecure", reg.host, "--username", "tester", "--password", "secret"];
    const url = `${reg.host}/bytecode/xdp_counter:v1`;
    assert.equal(
      await quiet(() =>
        runImageCli([
          "build",
          "-o",
          `${dir}/layout:v1`,
          "--program",
          "xdp_counter=xdp",
          "--map",
          "xdp_packets=array",
          XDP_OBJECT,
        ])
      ),
      0,
    ); // deno-fmt-ignore
    assert.equal(await quiet(() => runImageCli(["push", `${dir}/layout:v1`, url, ...auth])), 0);
    assert.equal(await quiet(() => runImageCli(["sign", url, "--key", join(dir, "cosign.key"), ...auth])), 0);

    const images = storeFor(reg, join(dir, "cache"), {
      signature: { allowUnsigned: false, keys: [key.publicPem] },
    });
    const image = { url, auth: { username: "tester", password: "secret" } };

    const pulled = await call(rt, images, "pull", image);
    assert.deepEqual(pulled.signature, { verified: true, by: `key ${keyFingerprint(key.spkiDer)}` });
    assert.deepEqual(pulled.programs, { xdp_counter: "xdp" });

    const { programs: [program] } = await call(rt, images, "load", {
      bytecode: { image },
      programs: [{ name: "xdp_counter", type: "xdp" }],
    });
    assert.deepEqual(program.program.bytecode, { image: { url, digest: pulled.digest } });
    const got = await call(rt, images, "get", { programId: program.id });
    assert.deepEqual(got.program.bytecode, { image: { url, digest: pulled.digest } });

    await call(rt, images, "attach", {
      programId: program.id,
      attach: { type: "xdp", iface: net.hostIf, netns: net.hostNs },
    });
    assert.equal(await net.ping(5), 5);
    const counter = program.program.maps.xdp_packets;
    assert.ok(readCounter(counter) >= 5, `counter ${readCounter(counter)} after 5 pings`);
    await call(rt, images, "unload", { programId: program.id });

    // A load that names no programs takes them from the image's io.ebpf.programs label.
    const fromLabels = await call(rt, images, "load", { bytecode: { image } });
    assert.deepEqual(
      fromLabels.programs.map((p: Json) => [p.program.name, p.program.type]),
      [["xdp_counter", "xdp"]],
    );
    await call(rt, images, "unload", { programId: fromLabels.programs[0].id });
  } finally {
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
  assert.deepEqual(await leftovers(before, ["xdp_counter"]), []);
});

Deno.test("load with a bad image: 4xx naming bytecode.image.*, nothing in the kernel or the cache", async () => {
  const before = kernelSnapshot();
  const reg = await startRegistry();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-image-load-" });
  try {
    await using rt = await startTestRuntime();
    const pusher = storeFor(reg, join(dir, "push"));
    const { pushTestImage } = await import("./_helpers.ts");
    await pushTestImage(pusher, reg, "bytecode/xdp:v1");
    const cases: [unknown, number, string, RegExp][] = [
      [{ url: `${reg.host}/bytecode/missing:v1` }, 404, "bytecode.image.url", /not found/],
      [{ url: `${reg.host}/Bad Ref` }, 400, "bytecode.image.url", /white space|not valid/],
      [
        { url: `${reg.host}/bytecode/xdp:v1`, pullPolicy: "Never" },
        404,
        "bytecode.image.url",
        /not in the cache/,
      ],
    ];
    for (const [image, status, field, re] of cases) {
      const images = storeFor(reg, join(dir, `cache-${status}-${field.length}-${Math.random()}`));
      const err = await call(rt, images, "load", {
        bytecode: { image },
        programs: [{ name: "xdp_counter", type: "xdp" }],
      }).then(() => undefined, (e) => e);
      assert.ok(err, `load of ${JSON.stringify(image)} should fail`);
      assert.equal(err.status, status, err.message);
      assert.equal(err.details.field, field);
      assert.match(err.message, re);
      await assertNothingCached(images);
    }
    // A program the image does not declare, or declared with another type.
    const images = storeFor(reg, join(dir, "cache-labels"));
    for (
      const [programs, field] of [
        [[{ name: "other_prog", type: "xdp" }], "programs.0.name"],
        [[{ name: "xdp_counter", type: "tracepoint" }], "programs.0.type"],
      ] as const
    ) {
      const err = await call(rt, images, "load", {
        bytecode: { image: { url: `${reg.host}/bytecode/xdp:v1` } },
        programs,
      }).then(() => undefined, (e) => e);
      assert.equal(err?.status, 400, err?.message);
      assert.equal(err.details.field, field);
    }
    assert.equal(rt.node.state.programs().length, 0);
  } finally {
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
  assert.deepEqual(await leftovers(before, ["xdp_counter"]), []);
});
