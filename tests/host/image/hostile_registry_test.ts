// A malicious registry on loopback (a small Deno server that plays one) against the image store: SSRF
// through the bearer realm and redirects, upstream bodies echoed into errors, errors as a port scanner,
// and bombs (huge manifests, many layers, large and lying layers, a gzip bomb). Each attack is refused with
// a clear error, nothing reaches where it should not, and nothing is left in the cache.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ImageError } from "../../../image/errors.ts";
import { buildImage, type BuiltImage } from "../../../image/format.ts";
import { ImageStore } from "../../../image/store.ts";
import { fromImageError } from "../../../functions/_errors.ts";
import { MT } from "../../../image/registry.ts";
import { RUNTIME_DENO_ARGS } from "../../../runtime/launch.ts";
import type { ImageStoreConfig } from "../../../model/image.ts";
import { freePort, serverCert } from "../../_registry.ts";
import { gzipBomb } from "../../_layers.ts";
import { assertNothingCached, rejectsWith, XDP_OBJECT } from "./_helpers.ts";

/** What a server on loopback saw: one line per request ("GET /path authorization=..."). */
interface Server {
  host: string;
  origin: string;
  hits: string[];
  stop(): Promise<void>;
}

type Handler = (req: Request, url: URL) => Response | Promise<Response>;

/** A server on 127.0.0.1 (HTTPS with `tls`) that records each request and answers with `handler`. */
function serve(handler: Handler, tls?: { cert: string; key: string }): Server {
  const hits: string[] = [];
  const port = freePort();
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {}, ...tls }, async (req) => {
    const url = new URL(req.url);
    hits.push(`${req.method} ${url.pathname} authorization=${req.headers.get("authorization") ?? "-"}`);
    return await handler(req, url);
  });
  return {
    host: `127.0.0.1:${port}`,
    origin: `${tls ? "https" : "http"}://127.0.0.1:${port}`,
    hits,
    stop: () => server.shutdown(),
  };
}

/**
 * A bytecode image as a registry serves it: `img`'s manifest (or `manifest`) under any tag or digest, no
 * signatures, blobs by digest (plus `blob`).
 */
function imageRoutes(
  img: BuiltImage,
  opts: { manifest?: Uint8Array; blob?: { digest: string; bytes: Uint8Array } } = {},
): Handler {
  const blobs = new Map([[img.configDigest, img.config], [img.layerDigest, img.layer]]);
  if (opts.blob) blobs.set(opts.blob.digest, opts.blob.bytes);
  const manifest = opts.manifest ?? img.manifest;
  return (_req, url) => {
    if (url.pathname === "/v2/") return new Response("{}");
    if (/\/manifests\/sha256-/.test(url.pathname)) return new Response("{}", { status: 404 });
    if (url.pathname.includes("/manifests/")) {
      return new Response(manifest as BodyInit, { headers: { "content-type": MT.ociManifest } });
    }
    const blob = blobs.get(url.pathname.split("/blobs/")[1] ?? "");
    return blob ? new Response(blob as BodyInit) : new Response("{}", { status: 404 });
  };
}

/** A manifest with the given layers (config from `img`). */
function manifestWith(img: BuiltImage, layers: { digest: string; size: number }[]): Uint8Array {
  const m = JSON.parse(new TextDecoder().decode(img.manifest));
  m.layers = layers.map((l) => ({ mediaType: MT.ociLayerGzip, ...l }));
  return new TextEncoder().encode(JSON.stringify(m));
}

async function testImage(): Promise<BuiltImage> {
  return await buildImage({
    objects: [{ name: "xdp_counter.bpf.o", bytes: await Deno.readFile(XDP_OBJECT) }],
    programs: { xdp_counter: "xdp" },
  });
}

interface Scene {
  dir: string;
  tls: Awaited<ReturnType<typeof serverCert>>;
  store(extra?: Partial<ImageStoreConfig>): ImageStore;
  serve(handler: Handler, tls?: boolean): Server;
}

/** Runs `fn` with a temp dir, a test CA and servers that are all stopped afterwards. */
async function scene(fn: (s: Scene) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-hostile-" });
  const servers: Server[] = [];
  const stores: ImageStore[] = [];
  try {
    const tls = await serverCert(dir, "hostile");
    let n = 0;
    await fn({
      dir,
      tls,
      store: (extra = {}) => {
        const s = new ImageStore({
          cacheDir: join(dir, `cache-${n++}`),
          caFiles: [tls.caFile],
          timeoutMs: 5000,
          ...extra,
        });
        stores.push(s);
        return s;
      },
      serve: (handler, secure = true) => {
        const s = serve(handler, secure ? { cert: tls.cert, key: tls.key } : undefined);
        servers.push(s);
        return s;
      },
    });
  } finally {
    for (const s of stores) s.close();
    for (const s of servers) await s.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A 401 asking for a bearer token from `realm`. */
function challenge(realm: string): Response {
  return new Response("{}", {
    status: 401,
    headers: { "www-authenticate": `Bearer realm="${realm}",service="evil",scope="repository:x:pull"` },
  });
}

const tokenServer: Handler = () => Response.json({ token: "tok" });

/** A registry that wants a bearer token (from `realm()`) before serving `img`. */
function bearerRegistry(img: BuiltImage, realm: () => string): Handler {
  const routes = imageRoutes(img);
  return (req, url) =>
    req.headers.get("authorization") === "Bearer tok" ? routes(req, url) : challenge(realm());
}

Deno.test("SSRF: the bearer realm must be HTTPS on the registry's host (or in realmHosts)", async () => {
  await scene(async (s) => {
    const img = await testImage();
    const plainToken = s.serve(tokenServer, false);
    const tlsToken = s.serve(tokenServer);
    const localhostRealm = () => `https://localhost:${tlsToken.host.split(":")[1]}/token`;

    // A plain-HTTP realm on the registry's own host: refused, the token server never hears of it.
    const plain = s.serve(bearerRegistry(img, () => `${plainToken.origin}/token?x=1`));
    const store = s.store();
    await rejectsWith(
      store.pull({ url: `${plain.host}/x:v1` }),
      "registry_error",
      /realm http:\/\/127\.0\.0\.1:\d+ is not HTTPS; not followed$/,
    );
    assert.deepEqual(plainToken.hits, []);
    await assertNothingCached(store);

    // A realm on another host (as an attacker would point at an internal service): refused.
    const elsewhere = s.serve(bearerRegistry(img, localhostRealm));
    await rejectsWith(
      store.pull({ url: `${elsewhere.host}/x:v1` }),
      "registry_error",
      /realm https:\/\/localhost:\d+ is not on the registry's host nor in realmHosts/,
    );
    assert.deepEqual(tlsToken.hits, []);

    // The same host over HTTPS, or another host named in realmHosts: followed.
    const own = s.serve(bearerRegistry(img, () => `${tlsToken.origin}/token`));
    assert.equal((await s.store().pull({ url: `${own.host}/x:v1` })).digest, img.manifestDigest);
    const listed = s.store({ realmHosts: [`localhost:${tlsToken.host.split(":")[1]}`] });
    assert.equal((await listed.pull({ url: `${elsewhere.host}/x:v1` })).digest, img.manifestDigest);
    assert.ok(tlsToken.hits.length >= 2);

    // An insecure (plain HTTP) registry: a plain realm only on its own host.
    const insecure = s.serve(
      bearerRegistry(img, () => `http://localhost:${plainToken.host.split(":")[1]}/token`),
      false,
    );
    const viaHttp = s.store({ insecureRegistries: [insecure.host] });
    await rejectsWith(
      viaHttp.pull({ url: `${insecure.host}/x:v1` }),
      "registry_error",
      /not on the registry's host/,
    );
    assert.deepEqual(plainToken.hits, []);
  });
});

Deno.test("SSRF: redirects never go from HTTPS to HTTP, nor to another host outside blobs or to internal hosts", async () => {
  await scene(async (s) => {
    const img = await testImage();
    const internal = s.serve(() => new Response("internal secret"), false);
    const storage = s.serve(imageRoutes(img));
    const storagePort = storage.host.split(":")[1];
    const creds = { username: "u", password: "p" };
    const basic = `Basic ${btoa("u:p")}`;
    /** A registry with basic auth that redirects blob downloads (or manifests) to `to(path)`. */
    const redirecting = (to: (path: string) => string, what: "blobs" | "manifests") => {
      const routes = imageRoutes(img);
      return s.serve((req, url) => {
        if (req.headers.get("authorization") !== basic) {
          return new Response("{}", { status: 401, headers: { "www-authenticate": 'Basic realm="evil"' } });
        }
        if (url.pathname.includes(`/${what}/`) && !url.pathname.includes("sha256-")) {
          return new Response(null, { status: 307, headers: { location: to(url.pathname) } });
        }
        return routes(req, url);
      });
    };
    const cases: [Server, RegExp][] = [
      [
        redirecting((p) => `${internal.origin}${p}`, "blobs"),
        /redirect from HTTPS to HTTP \(http:\/\/127\.0\.0\.1:\d+\); not followed/,
      ],
      [
        redirecting((p) => `https://localhost:${storagePort}${p}`, "manifests"),
        /redirect to another host \(https:\/\/localhost:\d+\) outside a blob download/,
      ],
      [
        redirecting((p) => `https://localhost:${storagePort}${p}`, "blobs"),
        /redirect to https:\/\/localhost:\d+, which is an internal address/,
      ],
    ];
    for (const [registry, re] of cases) {
      const store = s.store();
      await rejectsWith(store.pull({ url: `${registry.host}/x:v1`, auth: creds }), "registry_error", re);
      await assertNothingCached(store);
    }
    assert.deepEqual(internal.hits, [], "the plain-HTTP target was never contacted");
    assert.deepEqual(storage.hits, [], "the storage host was never contacted");

    // Blob storage named in redirectHosts: followed, without the registry's credentials.
    const toStorage = redirecting((p) => `https://localhost:${storagePort}${p}`, "blobs");
    const store = s.store({ redirectHosts: [`localhost:${storagePort}`] });
    assert.equal(
      (await store.pull({ url: `${toStorage.host}/x:v1`, auth: creds })).digest,
      img.manifestDigest,
    );
    assert.ok(storage.hits.length >= 2, storage.hits.join("\n"));
    for (const hit of storage.hits) {
      assert.match(hit, /authorization=-$/, "credentials stay with the registry");
    }
    assert.ok(toStorage.hits.some((h) => h.endsWith(`authorization=${basic}`)));
  });
});

Deno.test("upstream bodies are never echoed into errors or API answers", async () => {
  await scene(async (s) => {
    const SECRET = "INTERNAL-SECRET-7731";
    const errorDoc = JSON.stringify({ errors: [{ code: SECRET, message: SECRET }] });
    const answers: [Handler, string, RegExp][] = [
      [
        () => new Response(errorDoc, { status: 404 }),
        "not_found",
        /^registry 127\.0\.0\.1:\d+ answered 404 for manifest 127\.0\.0\.1:\d+\/x:v1: not found$/,
      ],
      [
        () => new Response(errorDoc, { status: 403 }),
        "unauthorized",
        /answered 403 for manifest .*: access denied$/,
      ],
      [
        () => new Response(SECRET.repeat(100), { status: 500 }),
        "registry_error",
        /answered 500 for manifest [^ ]+$/,
      ],
      [() => new Response(`<html>${SECRET}</html>`), "bad_image", /not JSON$/],
      [
        () => new Response(JSON.stringify({ schemaVersion: 2, mediaType: `${SECRET} <b>` })),
        "bad_image",
        /media type \(not shown\)/,
      ],
    ];
    for (const [handler, code, re] of answers) {
      const evil = s.serve(handler);
      const err = await rejectsWith(s.store().pull({ url: `${evil.host}/x:v1` }), code, re);
      const api = fromImageError(err, "bytecode.image");
      assert.ok(!(api instanceof ImageError));
      for (
        const text of [
          err.message,
          JSON.stringify(err),
          JSON.stringify((api as { toBody(): unknown }).toBody()),
        ]
      ) {
        assert.ok(!text.includes(SECRET), `echoed: ${text}`);
      }
    }
    // The token server's answers are not echoed either.
    const token = s.serve(() => new Response(`${SECRET}`, { status: 200 }));
    const evil = s.serve(() => challenge(`${token.origin}/token`));
    const err = await rejectsWith(
      s.store().pull({ url: `${evil.host}/x:v1` }),
      "registry_error",
      /token server answer is not JSON$/,
    );
    assert.ok(!err.message.includes(SECRET));
  });
});

Deno.test("connection errors give one message, whatever is (or is not) listening: no port scanner", async () => {
  await scene(async (s) => {
    const closed = `127.0.0.1:${freePort()}`;
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const hangup = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const conns: Deno.Conn[] = [];
    const accept = async (l: Deno.Listener, close: boolean) => {
      for await (const c of l) close ? c.close() : conns.push(c);
    };
    const loops = [accept(silent, false).catch(() => {}), accept(hangup, true).catch(() => {})];
    const plainHttp = s.serve(() => new Response("hello"), false);
    try {
      const messages = new Set<string>();
      for (
        const host of [
          closed,
          `127.0.0.1:${(silent.addr as Deno.NetAddr).port}`,
          `127.0.0.1:${(hangup.addr as Deno.NetAddr).port}`,
          plainHttp.host,
        ]
      ) {
        const store = s.store({ timeoutMs: 700 });
        const err = await rejectsWith(store.pull({ url: `${host}/x:v1` }), "registry_unreachable");
        messages.add(err.message.replace(host, "HOST"));
      }
      assert.deepEqual([...messages], [
        "registry HOST unreachable (no connection, TLS failure or no answer within 700 ms)",
      ]);
    } finally {
      silent.close();
      hangup.close();
      for (const c of conns) c.close();
      await Promise.all(loops);
    }
  });
});

Deno.test("bombs: manifest size, layer count, layer size and unpacked size are bounded", async (t) => {
  await scene(async (s) => {
    const img = await testImage();

    await t.step("a 5 MiB manifest, streamed without a length", async () => {
      const evil = s.serve(() =>
        new Response(
          new ReadableStream({
            start(c) {
              c.enqueue(new TextEncoder().encode('{"schemaVersion":2,"x":"'));
              for (let i = 0; i < 80; i++) c.enqueue(new Uint8Array(64 << 10).fill(0x61));
              c.close();
            },
          }),
        )
      );
      const store = s.store();
      await rejectsWith(
        store.pull({ url: `${evil.host}/x:v1` }),
        "too_large",
        /more than the limit of 4194304 bytes/,
      );
      await assertNothingCached(store);
    });

    await t.step("17 layers: refused before any blob is fetched", async () => {
      const many = manifestWith(
        img,
        Array.from({ length: 17 }, () => ({ digest: img.layerDigest, size: img.layer.length })),
      );
      await refusedUnfetched(
        s,
        imageRoutes(img, { manifest: many }),
        /17 layers, more than the limit of 16/,
        "/blobs/",
      );
    });

    await t.step("a layer declared larger than maxLayerBytes, and one larger than declared", async () => {
      const big = manifestWith(img, [{ digest: img.layerDigest, size: (64 << 20) + 1 }]);
      await refusedUnfetched(
        s,
        imageRoutes(img, { manifest: big }),
        /67108865 bytes, more than the limit of 67108864/,
        img.layerDigest,
      );
      const lying = s.serve(
        imageRoutes(img, { blob: { digest: img.layerDigest, bytes: new Uint8Array(3 << 20) } }),
      );
      const small = s.store({ maxLayerBytes: 1 << 20 });
      await rejectsWith(
        small.pull({ url: `${lying.host}/x:v1` }),
        "too_large",
        /more than the limit of 1048576/,
      );
      const streamed = s.serve((req, url) =>
        url.pathname.endsWith(img.layerDigest)
          ? new Response(new Blob([new Uint8Array(3 << 20)]).stream())
          : imageRoutes(img)(req, url)
      );
      await rejectsWith(
        s.store().pull({ url: `${streamed.host}/x:v1` }),
        "too_large",
        /more than the \d+ bytes the manifest declares/,
      );
      await assertNothingCached(small);
    });

    await t.step(
      "a gzip bomb: ~600 kB that unpacks to 600 MiB stops at maxUnpackedBytes, memory stays low",
      async () => {
        const bomb = await gzipBomb(600 << 20);
        const digest = `sha256:${await sha256(bomb)}`;
        const manifest = manifestWith(img, [{ digest, size: bomb.length }]);
        const evil = s.serve(imageRoutes(img, { manifest, blob: { digest, bytes: bomb } }));
        // The message, in this process; the memory, in a child process of its own (as a runtime would be).
        const store = s.store();
        await rejectsWith(
          store.pull({ url: `${evil.host}/x:v1` }),
          "too_large",
          /more than 268435456 bytes unpacked/,
        );
        const good = s.serve(imageRoutes(img));
        const normal = await peakOfPull(`${good.host}/x:v1`, join(s.dir, "peak-good"), s.tls.caFile);
        const bombed = await peakOfPull(`${evil.host}/x:v1`, join(s.dir, "peak-bomb"), s.tls.caFile);
        assert.deepEqual([normal.code, bombed.code], ["ok", "too_large"]);
        assert.ok(bomb.length < 1 << 20, `the bomb is ${bomb.length} bytes`);
        // What remains is V8 collecting the unpacked chunks in batches (~85 MiB on a quiet machine, up to
        // ~135 MiB on a busy one, whatever the bomb's size). Buffering would hold at least the 256 MiB it
        // unpacked before the limit struck; when layers were held in memory this bomb took 1.08 GiB.
        const grew = (bombed.peakBytes - normal.peakBytes) / 1048576;
        assert.ok(grew < 192, `peak RSS ${grew.toFixed(0)} MiB above a normal pull's`);
        await assertNothingCached(store);
      },
    );
  });
});

/** A pull from a registry serving `handler` fails with too_large matching `re`, never asking for `path`. */
async function refusedUnfetched(s: Scene, handler: Handler, re: RegExp, path: string): Promise<void> {
  const evil = s.serve(handler);
  const store = s.store();
  await rejectsWith(store.pull({ url: `${evil.host}/x:v1` }), "too_large", re);
  assert.ok(!evil.hits.some((h) => h.includes(path)), evil.hits.join("\n"));
  await assertNothingCached(store);
}

/** Pulls `url` in a child process run as the node runtime is: its outcome and its peak resident memory. */
async function peakOfPull(
  url: string,
  cacheDir: string,
  caFile: string,
): Promise<{ code: string; peakBytes: number }> {
  const script = new URL("./_pull_peak.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...RUNTIME_DENO_ARGS, "--quiet", script, url, cacheDir, caFile],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return [...h].map((b) => b.toString(16).padStart(2, "0")).join("");
}
