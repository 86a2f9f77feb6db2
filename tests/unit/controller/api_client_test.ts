import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { ApiClient, ApiError } from "../../../controller/api_client.ts";
import { serverCert } from "../../_registry.ts";

function kubeConfig(server: string, opts: { skipTLSVerify?: boolean; caFile?: string } = {}): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server, skipTLSVerify: opts.skipTLSVerify ?? false, caFile: opts.caFile }],
    users: [{ name: "u", token: "t0ken" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return kc;
}

Deno.test("API client: JSON over TLS with the kubeconfig's CA and token; an error carries the status as code", async () => {
  const seen: Array<{ method: string; path: string; auth: string | null; body: string }> = [];
  const dir = await Deno.makeTempDir();
  await using _cleanup = { [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
  const tls = await serverCert(dir, "apiserver");
  await using server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: tls.cert,
    key: tls.key,
    onListen() {},
  }, async (req) => {
    seen.push({
      method: req.method,
      path: new URL(req.url).pathname,
      auth: req.headers.get("authorization"),
      body: await req.text(),
    });
    return req.method === "PUT"
      ? Response.json({ kind: "Status", message: "the object has been modified" }, { status: 409 })
      : Response.json({ metadata: { name: "a", resourceVersion: "7" } }, { status: 201 });
  });
  const api = new ApiClient(kubeConfig(`https://127.0.0.1:${server.addr.port}`, { caFile: tls.caFile }));
  assert.equal(api.usable, true);
  const out = await api.request<{ metadata: { resourceVersion: string } }>("POST", "/apis/x/v1/things", {
    a: 1,
  });
  assert.equal(out.metadata.resourceVersion, "7");
  await assert.rejects(
    api.request("PUT", "/apis/x/v1/things/a", {}),
    (e: unknown) => e instanceof ApiError && e.code === 409 && /has been modified/.test(e.message),
  );
  assert.deepEqual(seen[0], {
    method: "POST",
    path: "/apis/x/v1/things",
    auth: "Bearer t0ken",
    body: '{"a":1}',
  });
  api.close();
  assert.equal(new ApiClient(kubeConfig("https://127.0.0.1:1", { skipTLSVerify: true })).usable, false);
});
