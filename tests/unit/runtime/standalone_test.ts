import assert from "node:assert/strict";
import { standaloneCommand } from "../../../runtime/standalone.ts";
import { RuntimeConfig } from "../../../runtime/config.ts";

Deno.test("standalone: the runtime runs the controller's standalone mode on its own socket, state and log level", () => {
  const config = RuntimeConfig.parse({
    stateDir: "/tmp/st/",
    socket: "/tmp/st/bpfd.sock",
    configs: "/etc/bpfd/programs",
    logLevel: "warn",
  });
  const args = standaloneCommand(config, "host-1");
  assert.equal(args[0], Deno.execPath());
  assert.match(args.find((a) => a.endsWith("controller/main.ts"))!, /^\/.*controller\/main\.ts$/);
  const after = (flag: string) => args[args.indexOf(flag) + 1];
  assert.equal(after("--standalone"), "/etc/bpfd/programs");
  assert.equal(after("--runtime"), "unix:/tmp/st/bpfd.sock");
  assert.equal(after("--node-name"), "host-1");
  assert.equal(after("--status-dir"), "/tmp/st/bpfprograms");
  assert.equal(after("--log-level"), "warn");
  assert.throws(
    () => standaloneCommand(RuntimeConfig.parse({ socket: "", configs: "/x" })),
    /--configs needs the unix socket/,
  );
});
