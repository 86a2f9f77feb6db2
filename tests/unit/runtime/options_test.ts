/** The node runtime's and `deno task invoke`'s command-line options, without starting either. */
import assert from "node:assert/strict";
import { configFrom, parseNodeArgs } from "../../../runtime/options.ts";

Deno.test("runtime options: --name value and --name=value both set a value; other words are positional", () => {
  assert.deepEqual(parseNodeArgs(["--state-dir", "/tmp/s", "--bpffs=/tmp/fs", "load", "{}", "--socket="]), {
    values: { "state-dir": "/tmp/s", bpffs: "/tmp/fs", socket: "" },
    positionals: ["load", "{}"],
  });
  assert.deepEqual(parseNodeArgs(["--listen=a=b"]).values, { listen: "a=b" }, "only the first = splits");
  assert.deepEqual(parseNodeArgs(["-h"]), { values: { help: true }, positionals: [] });
  assert.deepEqual(parseNodeArgs(["--help", "x"]), { values: { help: true }, positionals: ["x"] });
});

Deno.test("runtime options: an unknown option or one without its value is an error naming it", () => {
  assert.throws(() => parseNodeArgs(["--port", "1"]), /unknown option --port/);
  assert.throws(() => parseNodeArgs(["--verbose"]), /unknown option --verbose/);
  assert.throws(() => parseNodeArgs(["--config"]), /option --config needs a value/);
});

Deno.test("runtime options: the configuration is the embedded default overridden by the options given", async () => {
  const config = await configFrom(
    parseNodeArgs(["--state-dir", "/tmp/s", "--listen", "", "--log-level", "debug"]).values,
  );
  assert.deepEqual(config, {
    stateDir: "/tmp/s",
    bpffs: "/run/bpfd/fs",
    socket: "/run/bpfd/bpfd.sock",
    listen: "",
    group: "bpfd",
    apiGroup: "bpfd-admin",
    insecureTcpWithoutAuthIUnderstandThisIsRoot: false,
    allowedHosts: [],
    http: { maxConnections: 256, maxBodyBytes: 1048576, headerTimeoutMs: 10_000, idleTimeoutMs: 60_000 },
    logLevel: "debug",
    configs: "",
  });
  await assert.rejects(configFrom({ "log-level": "loud" }), /logLevel/);
});

Deno.test("runtime options: TCP without TLS and authentication needs the option that says what it means", async () => {
  const { values } = parseNodeArgs([
    "--listen",
    "127.0.0.1:1",
    "--insecure-tcp-without-auth-i-understand-this-is-root",
  ]);
  assert.equal((await configFrom(values)).insecureTcpWithoutAuthIUnderstandThisIsRoot, true);
  assert.equal(
    (await configFrom(parseNodeArgs([]).values)).insecureTcpWithoutAuthIUnderstandThisIsRoot,
    false,
  );
  assert.throws(() => parseNodeArgs(["--insecure-tcp"]), /unknown option/);
});
