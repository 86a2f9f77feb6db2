/** Every way of starting the controller passes the same deno arguments (controller/launch.ts). */
import assert from "node:assert/strict";
import { CONTROLLER_DENO_ARGS } from "../../../controller/launch.ts";
import { manifestDocuments } from "../../../manifests/manifests.ts";

const root = new URL("../../../", import.meta.url).pathname;

Deno.test("deno task controller and the Deployment run the controller with CONTROLLER_DENO_ARGS", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(`${root}deno.json`));
  assert.equal(denoJson.tasks.controller, `deno ${CONTROLLER_DENO_ARGS.join(" ")} controller/main.ts`);
  const deployment = manifestDocuments({}).find((d) => d.kind === "Deployment");
  // deno-lint-ignore no-explicit-any
  const container = (deployment as any).spec.template.spec.containers[0];
  assert.deepEqual(container.command, [
    "deno",
    ...CONTROLLER_DENO_ARGS,
    "--cached-only",
    "controller/main.ts",
  ]);
});
