/** The node runtime's configuration file: defaults, overrides and what it refuses. */
import assert from "node:assert/strict";
import { loadConfig, RuntimeConfig } from "../../../runtime/config.ts";

Deno.test("runtime config: the embedded default keeps state in /run/bpfd and serves the unix socket only", () => {
  assert.deepEqual(RuntimeConfig.parse({}), {
    stateDir: "/run/bpfd",
    bpffs: "/run/bpfd/fs",
    socket: "/run/bpfd/bpfd.sock",
    listen: "",
    group: "bpfd",
    apiGroup: "bpfd-admin",
    insecureTcpWithoutAuthIUnderstandThisIsRoot: false,
    allowedHosts: [],
    http: { maxConnections: 256, maxBodyBytes: 1048576, headerTimeoutMs: 10_000, idleTimeoutMs: 60_000 },
    logLevel: "info",
    configs: "",
  });
});

Deno.test("runtime config: a file's values are taken, and options given on the command line win", async () => {
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(
      file,
      JSON.stringify({ stateDir: "/var/lib/x", listen: "0.0.0.0:1", tls: { certFile: "/c", keyFile: "/k" } }),
    );
    const config = await loadConfig(file, { listen: "127.0.0.1:2", socket: undefined });
    assert.equal(config.stateDir, "/var/lib/x");
    assert.equal(config.listen, "127.0.0.1:2");
    assert.equal(
      config.socket,
      "/run/bpfd/bpfd.sock",
      "an option not given leaves the file's or default value",
    );
    assert.deepEqual(config.tls, { certFile: "/c", keyFile: "/k" });
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("runtime config: unknown keys, an empty TLS file and tokenFile mode without a file are refused", () => {
  const refused = (input: unknown, path: string) => {
    const result = RuntimeConfig.safeParse(input);
    assert.ok(!result.success, JSON.stringify(input));
    assert.ok(
      result.error.issues.some((i) =>
        i.path.join(".") === path || (i.code === "unrecognized_keys" && path === "")
      ),
      `${JSON.stringify(input)}: ${JSON.stringify(result.error.issues)}`,
    );
  };
  refused({ statedir: "/x" }, "");
  refused({ tls: { certFile: "", keyFile: "/k" } }, "tls.certFile");
  refused({ auth: { mode: "tokenFile" } }, "auth.tokenFile");
  refused({ auth: { mode: "oauth" } }, "auth.mode");
  refused({ auth: { cacheSeconds: 301 } }, "auth.cacheSeconds");
  refused({ logLevel: "trace" }, "logLevel");
});

Deno.test("runtime config: auth defaults to mode none with verdicts cached 10 seconds", () => {
  assert.deepEqual(RuntimeConfig.parse({ auth: {} }).auth, { mode: "none", cacheSeconds: 10 });
  assert.deepEqual(RuntimeConfig.parse({ auth: { mode: "tokenFile", tokenFile: "/etc/t" } }).auth, {
    mode: "tokenFile",
    tokenFile: "/etc/t",
    cacheSeconds: 10,
  });
});
