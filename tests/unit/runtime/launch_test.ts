/** Every way of starting the node runtime passes the same deno arguments (runtime/launch.ts). */
import assert from "node:assert/strict";
import { RUNTIME_DENO_ARGS } from "../../../runtime/launch.ts";
import { manifestDocuments } from "../../../manifests/manifests.ts";

const root = new URL("../../../", import.meta.url).pathname;
const command = `deno ${RUNTIME_DENO_ARGS.join(" ")} runtime/main.ts`;

Deno.test("deno task start runs the runtime with RUNTIME_DENO_ARGS", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(`${root}deno.json`));
  assert.equal(denoJson.tasks.start, command);
});

Deno.test("scripts/start.sh runs the runtime with RUNTIME_DENO_ARGS", async () => {
  const script = await Deno.readTextFile(`${root}scripts/start.sh`);
  assert.match(
    script,
    new RegExp(`^exec \\S*deno ${RUNTIME_DENO_ARGS.join(" ")} runtime/main\\.ts "\\$@"$`, "m"),
  );
});

Deno.test("the image's CMD and the DaemonSet run the runtime with RUNTIME_DENO_ARGS", async () => {
  const containerfile = await Deno.readTextFile(`${root}manifests/Containerfile`);
  const cmd = JSON.parse(containerfile.match(/^CMD (\[.*\])$/m)![1]);
  assert.deepEqual(cmd, ["deno", ...RUNTIME_DENO_ARGS, "--cached-only", "runtime/main.ts"]);
  const daemonSet = manifestDocuments({}).find((d) => d.kind === "DaemonSet");
  // deno-lint-ignore no-explicit-any
  const container = (daemonSet as any).spec.template.spec.containers[0];
  assert.deepEqual(container.command, cmd);
});
