/**
 * Issue 12, items 1 and 2 over TCP: the runtime refuses a TCP listener without TLS and authentication;
 * with the loudly named option it still refuses browser requests (Origin, a rebound Host, a text/plain
 * "simple request"), and it never records a caller from the Host header. With TLS and a token, Origin is
 * still refused.
 */
import * as assert from "node:assert/strict";
import {
  bytecodePath,
  cleanUp,
  kernelSnapshot,
  leftovers,
  RuntimeProcess,
  startWithConfig,
} from "../../_runtime.ts";
import { RUNTIME_DENO_ARGS } from "../../../runtime/launch.ts";
import { freePort, rawHttp } from "./_attack.ts";

const INSECURE = "--insecure-tcp-without-auth-i-understand-this-is-root";
const load = {
  bytecode: { path: bytecodePath("xdp_counter") },
  programs: [{ name: "xdp_counter", type: "xdp" }],
};
const post = (host: string, fn: string, body: string, headers: string[] = []) =>
  [`POST /v1/functions/${fn} HTTP/1.1`, `Host: ${host}`, ...headers, `Content-Length: ${body.length}`, "", ""]
    .join("\r\n");

Deno.test("tcp: a listener without TLS and authentication is refused at start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-sec-tcp-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        ...RUNTIME_DENO_ARGS,
        new URL("../../../runtime/main.ts", import.meta.url).pathname,
        ...[
          "--state-dir",
          dir,
          "--bpffs",
          `${dir}/fs`,
          "--socket",
          "",
          "--listen",
          `127.0.0.1:${freePort()}`,
        ],
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.notEqual(out.code, 0);
    assert.match(new TextDecoder().decode(out.stderr), /refusing to serve .* without TLS and authentication/);
  } finally {
    await cleanUp(undefined, dir);
  }
});

Deno.test("tcp (insecure option): Origin → 403, a foreign Host → 421, text/plain → 415; callers are never named by Host", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-sec-tcp-" });
  const before = kernelSnapshot();
  const port = freePort();
  const to = { hostname: "127.0.0.1", port };
  let rt: RuntimeProcess | undefined;
  try {
    rt = await RuntimeProcess.start(dir, ["--listen", `127.0.0.1:${port}`, INSECURE]);
    const body = JSON.stringify(load);
    const json = "Content-Type: application/json";
    // A page's CORS "simple request": text/plain, with Origin.
    const simple = await rawHttp(
      to,
      post(`127.0.0.1:${port}`, "load", body, ["Content-Type: text/plain", "Origin: https://evil.example"]),
      body,
    );
    assert.equal(simple.status, 403, simple.text);
    // The same without Origin (a client that hides it) is still not JSON.
    assert.equal(
      (await rawHttp(to, post(`127.0.0.1:${port}`, "load", body, ["Content-Type: text/plain"]), body)).status,
      415,
    );
    // DNS rebinding: the page's own name in Host.
    const rebound = await rawHttp(to, post(`rebind.evil.example:${port}`, "load", body, [json]), body);
    assert.equal(rebound.status, 421, rebound.text);
    assert.equal(
      (await rawHttp(to, `GET /healthz HTTP/1.1\r\nHost: rebind.evil.example:${port}\r\n\r\n`)).status,
      421,
    );
    assert.deepEqual((await rt.call("list", {})).body.programs, []);

    // A plain request to the address works; the caller is the peer address, not what Host claims.
    const ok = await rawHttp(to, post(`localhost:${port}`, "load", body, [json]), body);
    assert.equal(ok.status, 200, ok.text);
    const loadedBy = JSON.parse(ok.text.slice(ok.text.indexOf("\r\n\r\n") + 4)).programs[0].program.loadedBy;
    assert.deepEqual(loadedBy, { user: "anonymous", via: "tcp 127.0.0.1" });
  } finally {
    await cleanUp(rt, dir);
  }
  assert.deepEqual(await leftovers(before, ["xdp_counter"]), []);
});

Deno.test("tcp with TLS and a token: Origin is refused even with a valid token", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-sec-tls-" });
  const port = freePort();
  let rt: RuntimeProcess | undefined;
  try {
    const openssl = await new Deno.Command("openssl", {
      args: [
        ...[
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-days",
          "1",
        ],
        ...[
          "-subj",
          "/CN=localhost",
          "-addext",
          "subjectAltName=IP:127.0.0.1,DNS:localhost",
          "-addext",
          "basicConstraints=critical,CA:FALSE",
        ],
        ...["-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`],
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    assert.equal(openssl.code, 0);
    const token = "0123456789abcdef0123456789abcdef";
    await Deno.writeTextFile(`${dir}/tokens.csv`, `${token},tester\n`);
    rt = await startWithConfig(dir, {
      tls: { certFile: `${dir}/cert.pem`, keyFile: `${dir}/key.pem` },
      auth: { mode: "tokenFile", tokenFile: `${dir}/tokens.csv` },
    }, ["--listen", `127.0.0.1:${port}`]);
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(`${dir}/cert.pem`)] });
    try {
      const call = async (headers: Record<string, string>) => {
        const res = await fetch(`https://127.0.0.1:${port}/v1/functions/list`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...headers },
          body: "{}",
          client,
        });
        await res.body?.cancel();
        return res.status;
      };
      assert.equal(await call({}), 200);
      assert.equal(await call({ origin: "https://evil.example" }), 403);
      assert.equal(await call({ "content-type": "text/plain" }), 415);
    } finally {
      client.close();
    }
  } finally {
    await cleanUp(rt, dir);
  }
});
