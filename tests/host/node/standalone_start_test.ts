/**
 * `deno task start --configs DIR`: the node runtime in standalone mode converges to the BpfProgramConfig
 * files in a directory — a file added loads and attaches, its BpfProgram is written under the state
 * directory, a file removed unloads.
 */
import assert from "node:assert/strict";
import { bytecodePath, RuntimeProcess } from "../../_runtime.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  for (const deadline = Date.now() + ms; Date.now() < deadline;) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

Deno.test("runtime --configs DIR: files added and removed converge the node", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-standalone-" });
  const configs = `${dir}/configs`;
  await Deno.mkdir(configs);
  const rt = await RuntimeProcess.start(dir, ["--configs", configs]);
  try {
    await Deno.writeTextFile(
      `${configs}/getppid.yaml`,
      `apiVersion: bpfd.io/v1alpha1
kind: BpfProgramConfig
metadata:
  name: count-getppid
spec:
  name: enter_getppid
  type: Tracepoint
  nodeselector: {}
  attachpoint:
    tracepoint: syscalls/sys_enter_getppid
  bytecode:
    path: ${bytecodePath("tracepoint_counter")}
`,
    );
    const owned = async () =>
      ((await rt.call("list", {})).body.programs as Json[]).filter((p) =>
        p.program.metadata["bpfd.io/config"] === "count-getppid"
      );
    const [program] = await waitFor("the program loaded and attached", async () => {
      const found = await owned();
      return found.length === 1 && found[0].links.length === 1 ? found : undefined;
    });
    assert.equal(program.program.type, "tracepoint");
    assert.equal(program.links[0].attach.tracepoint, "syscalls/sys_enter_getppid");
    const status = await waitFor("the BpfProgram written", async () => {
      let names: string[] = [];
      try {
        names = [...Deno.readDirSync(`${dir}/bpfprograms`)].map((e) => e.name);
      } catch { /* not written yet */ }
      for (const name of names) {
        const bp = JSON.parse(await Deno.readTextFile(`${dir}/bpfprograms/${name}`));
        if (
          bp.metadata?.labels?.owningConfig === "count-getppid" &&
          bp.status?.conditions?.[0]?.reason === "bpfdLoaded"
        ) {
          return bp;
        }
      }
      return undefined;
    });
    assert.deepEqual(Object.keys(status.spec.programs), [String(program.id)]);
    // Who loaded it (the standalone controller, the runtime's child, over the socket), and when.
    assert.equal(status.spec.programs[program.id].loadedby, program.program.loadedBy.user);
    assert.match(program.program.loadedBy.via, /unix-socket/);
    assert.equal(status.spec.programs[program.id].loadedat, program.program.loadedAt);

    await Deno.remove(`${configs}/getppid.yaml`);
    await waitFor("the program unloaded", async () => (await owned()).length === 0 ? true : undefined);
  } finally {
    await rt.stop();
    await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true });
  }
});
