// Standalone mode: the controller fed by BpfProgramConfig files in a directory, driving a local node
// runtime (a real runtime process on a unix socket) — files added, changed and removed converge the node.
import assert from "node:assert/strict";
import { bytecodePath, readCounter, RuntimeProcess, startTestRuntime } from "../_runtime.ts";
import { Standalone } from "../../controller/standalone.ts";
import { Logger } from "../../lib/log.ts";
import { HttpNodeCaller, type NodeCaller, NodeError } from "../../controller/node_client.ts";
import { invoke } from "../../functions/mod.ts";
import { reconcile } from "../../functions/reconcile.ts";
import type { Node } from "../../runtime/ctx.ts";
import { startRegistry } from "../_registry.ts";
import { pushTestImage, storeFor } from "../host/image/_helpers.ts";

const root = new URL("../..", import.meta.url).pathname;
import { waitFor } from "../_kube.ts";
import { ControllerProcess, type Json } from "./_cluster.ts";
import { NodeNet } from "./_nodes.ts";
import { RUNTIME_DENO_ARGS } from "../../runtime/launch.ts";

Deno.test("standalone: config files in a directory converge the local node", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-standalone-" });
  const configs = `${dir}/configs`, status = `${dir}/status`;
  await Deno.mkdir(configs);
  await using net = await NodeNet.create(240);
  let runtime: RuntimeProcess | undefined;
  let controller: ControllerProcess | undefined;
  try {
    await Deno.mkdir(`${dir}/rt`);
    runtime = await RuntimeProcess.start(`${dir}/rt`);
    controller = new ControllerProcess("standalone", [
      "--standalone",
      configs,
      "--runtime",
      `unix:${runtime.socket}`,
      "--node-name",
      "local",
      "--node-labels",
      "role=edge",
      "--resync",
      "1",
      "--status-dir",
      status,
    ], `${dir}/controller.log`);
    await controller.start();
    const rt = runtime;
    const owned = async (owner: string) =>
      ((await rt.call("list", {})).body.programs as Json[]).filter((p) =>
        p.program.metadata["bpfd.io/owner"] === owner
      );
    const seed = (extra = "") =>
      Deno.readTextFileSync(new URL("../../crds/examples/xdp-pass-all-nodes.yaml", import.meta.url))
        .replace("name: pass", "name: xdp_counter")
        .replace("interface: eth0", `interface: ${net.hostIf}`)
        .replace(/imageurl: .*/, `path: ${bytecodePath("xdp_counter")}`) + extra;
    const statusOf = async (name: string) => {
      try {
        return JSON.parse(await Deno.readTextFile(`${status}/${name}.json`));
      } catch {
        return undefined;
      }
    };

    await t.step("a file added loads the program; its BpfProgram is written to the status dir", async () => {
      await Deno.writeTextFile(`${configs}/xdp.yaml`, seed());
      const [p] = await waitFor("loaded", async () => {
        const o = await owned("xdp-pass-all-nodes-local");
        return o.length === 1 && o[0].links.length === 1 ? o : undefined;
      }, 30000);
      const bp = await waitFor("status", async () => {
        const s = await statusOf("xdp-pass-all-nodes-local");
        return s?.status?.conditions?.[0]?.reason === "bpfdLoaded" ? s : undefined;
      });
      assert.deepEqual(Object.keys(bp.spec.programs), [String(p.id)]);
      const map = p.program.maps.xdp_packets;
      const before = readCounter(map);
      assert.equal(await net.pingHost(4), 4);
      assert.ok(readCounter(map) >= before + 4);
    });

    let firstId = 0;
    await t.step(
      "a changed file replaces the program; a nodeselector that no longer matches unloads it",
      async () => {
        firstId = (await owned("xdp-pass-all-nodes-local"))[0].id;
        await Deno.writeTextFile(
          `${configs}/xdp.yaml`,
          seed().replace("nodeselector: {}", "nodeselector: {matchLabels: {role: edge}}") +
            "  globaldata:\n    verdict: AgAAAA==\n",
        );
        await waitFor("replaced", async () => {
          const o = await owned("xdp-pass-all-nodes-local");
          return o.length === 1 && o[0].id !== firstId && o[0].links.length === 1;
        }, 30000);
        await Deno.writeTextFile(
          `${configs}/xdp.yaml`,
          seed().replace("nodeselector: {}", "nodeselector: {matchLabels: {role: core}}"),
        );
        await waitFor("unloaded", async () => (await owned("xdp-pass-all-nodes-local")).length === 0, 30000);
        await waitFor(
          "status removed",
          async () => (await statusOf("xdp-pass-all-nodes-local")) === undefined,
        );
        await Deno.writeTextFile(`${configs}/xdp.yaml`, seed());
        await waitFor(
          "loaded again",
          async () => (await owned("xdp-pass-all-nodes-local")).length === 1,
          30000,
        );
      },
    );

    await t.step("an invalid file is reported and does not disturb the others", async () => {
      await Deno.writeTextFile(
        `${configs}/bad.yaml`,
        seed().replace("xdp-pass-all-nodes", "bad").replace("XDP", "XDPP"),
      );
      await waitFor(
        "reported",
        async () =>
          /invalid config file.*bad\.yaml.*spec\.type/.test(await Deno.readTextFile(`${dir}/controller.log`)),
      );
      assert.equal((await owned("xdp-pass-all-nodes-local")).length, 1);
      assert.equal((await owned("bad-local")).length, 0);
    });

    await t.step("drift is repaired by the resync", async () => {
      const [p] = await owned("xdp-pass-all-nodes-local");
      const r = await rt.call("unload", { programId: p.id }); // behind the controller's back
      assert.equal(r.status, 200);
      await waitFor("reloaded", async () => {
        const o = await owned("xdp-pass-all-nodes-local");
        return o.length === 1 && o[0].id !== p.id;
      }, 30000);
    });

    await t.step("a file removed unloads the program", async () => {
      await Deno.remove(`${configs}/xdp.yaml`);
      await waitFor("unloaded", async () => (await owned("xdp-pass-all-nodes-local")).length === 0, 30000);
      assert.deepEqual((await rt.call("list", {})).body.programs, []);
    });
  } catch (err) {
    console.error(await Deno.readTextFile(`${dir}/controller.log`).catch(() => ""));
    throw err;
  } finally {
    await controller?.kill("SIGKILL");
    if (runtime) {
      for (
        const p of ((await runtime.call("list", {}).catch(() => ({ body: { programs: [] } }))).body
          .programs as Json[])
      ) {
        await runtime.call("unload", { programId: p.id }).catch(() => {});
      }
      await runtime.stop();
    }
    await new Deno.Command("umount", { args: [`${dir}/rt/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

/** A NodeCaller that runs `reconcile` in-process on `node` (no HTTP). */
function inProcessCaller(node: Node): NodeCaller {
  const ctx = node.ctxFor({ user: "standalone-controller", via: "in-process" });
  return {
    async reconcile(_node, input) {
      try {
        return await invoke(reconcile, input, ctx);
      } catch (err) {
        const e = err as { status?: number; message?: string };
        throw new NodeError(e.status ?? 500, String(e.message ?? err));
      }
    },
  };
}

Deno.test("standalone: the reconciler driving a node in-process", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-standalone-inproc-" });
  await using net = await NodeNet.create(241);
  await using rt = await startTestRuntime();
  const sa = new Standalone({
    dir,
    node: { name: "local", labels: {} },
    nodes: inProcessCaller(rt.node),
    log: new Logger("warn"),
    resyncMs: 500,
  });
  try {
    await sa.start();
    const seed = Deno.readTextFileSync(
      new URL("../../crds/examples/xdp-pass-all-nodes.yaml", import.meta.url),
    )
      .replace("name: pass", "name: xdp_counter")
      .replace("interface: eth0", `interface: ${net.hostIf}`)
      .replace(/imageurl: .*/, `path: ${bytecodePath("xdp_counter")}`);
    await Deno.writeTextFile(`${dir}/xdp.yaml`, seed);
    await sa.rescan();
    await sa.settled();
    const progs = rt.node.state.programs();
    assert.equal(progs.length, 1);
    assert.equal(progs[0].metadata["bpfd.io/owner"], "xdp-pass-all-nodes-local");
    const bp = sa.store.program("xdp-pass-all-nodes-local")!;
    assert.equal(bp.status?.conditions?.[0].reason, "bpfdLoaded");
    assert.equal(sa.store.config("xdp-pass-all-nodes")?.status?.nodes?.loaded, 1);
    // Map sharing: a config naming the first as its map owner uses the same pinned maps on the node
    // (even when it comes first: the node refuses until the owner is there, and the retry converges).
    await Deno.writeTextFile(
      `${dir}/a-shared.yaml`,
      JSON.stringify({
        apiVersion: "bpfd.io/v1alpha1",
        kind: "BpfProgramConfig",
        metadata: { name: "tc-shared" },
        spec: {
          name: "tc_counter",
          type: "TC",
          attachpoint: { interface: net.hostIf, direction: "ingress" },
          bytecode: { path: bytecodePath("tc_counter") },
          mapowner: "xdp-pass-all-nodes",
        },
      }),
    );
    await sa.rescan();
    await sa.settled();
    const shared = sa.store.program("tc-shared-local")!;
    assert.equal(shared.status?.conditions?.[0].reason, "bpfdLoaded", JSON.stringify(shared.status));
    const owner = rt.node.state.programs().find((p) =>
      p.metadata["bpfd.io/owner"] === "xdp-pass-all-nodes-local"
    )!;
    const user = rt.node.state.programs().find((p) => p.metadata["bpfd.io/owner"] === "tc-shared-local")!;
    assert.equal(user.mapOwnerId, owner.id);
    assert.equal(Object.values(shared.spec.programs ?? {})[0].mappinpath, owner.mapPinPath);
    await Deno.remove(`${dir}/a-shared.yaml`);
    await Deno.remove(`${dir}/xdp.yaml`);
    await sa.rescan();
    await sa.settled();
    assert.equal(rt.node.state.programs().length, 0);
    assert.equal(sa.store.programs().length, 0);
  } finally {
    await sa.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("standalone: the seed's example with bytecode.imageurl, pulled from a real registry", async () => {
  const reg = await startRegistry();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-standalone-image-" });
  await using net = await NodeNet.create(242);
  let runtime: Deno.ChildProcess | undefined;
  const socket = `${dir}/bpfd.sock`;
  let sa: Standalone | undefined;
  let caller: HttpNodeCaller | undefined;
  try {
    await pushTestImage(storeFor(reg, `${dir}/push`), reg, "bpfd-bytecode/xdp_pass:latest");
    await Deno.writeTextFile(
      `${dir}/runtime.json`,
      JSON.stringify({ images: { cacheDir: `${dir}/images`, insecureRegistries: [reg.host] } }),
    );
    runtime = new Deno.Command("setpriv", {
      args: [
        "--pdeathsig",
        "KILL",
        "--",
        Deno.execPath(),
        ...RUNTIME_DENO_ARGS,
        `${root}runtime/main.ts`,
        "--config",
        `${dir}/runtime.json`,
        "--state-dir",
        `${dir}/rt`,
        "--bpffs",
        `${dir}/rt/fs`,
        "--socket",
        socket,
        "--listen",
        "",
        "--log-level",
        "warn",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn(); // deno-fmt-ignore
    caller = new HttpNodeCaller(20_000);
    const node = { name: "local", labels: {}, address: `unix:${socket}` };
    const c = caller;
    await waitFor("runtime up", () => c.call(node, "list", {}).then(() => true), 20_000);
    await Deno.mkdir(`${dir}/configs`);
    // The seed's example as written, but for the program name (this repository's XDP object), the
    // interface (the test's veth) and the registry (the test's, on loopback).
    await Deno.writeTextFile(
      `${dir}/configs/seed.yaml`,
      Deno.readTextFileSync(new URL("../../crds/examples/xdp-pass-all-nodes.yaml", import.meta.url))
        .replace("name: pass", "name: xdp_counter")
        .replace("interface: eth0", `interface: ${net.hostIf}`)
        .replace("quay.io/", `${reg.host}/`),
    );
    sa = new Standalone({
      dir: `${dir}/configs`,
      node,
      nodes: caller,
      log: new Logger("warn"),
      resyncMs: 1000,
    });
    await sa.start();
    await sa.settled();
    const bp = sa.store.program("xdp-pass-all-nodes-local")!;
    assert.equal(bp.status?.conditions?.[0].reason, "bpfdLoaded", JSON.stringify(bp.status));
    const [id] = Object.keys(bp.spec.programs ?? {});
    const got = await c.call(node, "get", { programId: Number(id) }) as Json;
    assert.match(got.program.bytecode.image.url, /bpfd-bytecode\/xdp_pass:latest$/);
    assert.match(got.program.bytecode.image.digest, /^sha256:/);
    const map = bp.spec.programs![id].maps.xdp_packets;
    const before = readCounter(map);
    assert.equal(await net.pingHost(3), 3);
    assert.ok(readCounter(map) >= before + 3);
    await Deno.remove(`${dir}/configs/seed.yaml`);
    await sa.rescan();
    await sa.settled();
    assert.deepEqual((await c.call(node, "list", {}) as Json).programs, []);
  } finally {
    await sa?.stop();
    caller?.close();
    if (runtime) {
      try {
        runtime.kill("SIGTERM");
      } catch { /* gone */ }
      await runtime.status;
    }
    await new Deno.Command("umount", { args: [`${dir}/rt/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await reg.stop();
  }
});
