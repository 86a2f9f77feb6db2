/**
 * Day two on a real API server with a real node runtime and the controller process: a priority change
 * keeps the program, its counter and every ping; an attach-point change moves the program without a
 * reload; a re-pushed tag (`imagepullpolicy: Always`) is rolled out by the resync and the config's status
 * shows the digest; a private registry image loads through a pull secret; a manifest list without the
 * node's platform, a missing Secret, one without `.dockerconfigjson` and wrong credentials each end in a
 * condition that names the cause. The controller runs as its ServiceAccount with the RBAC deploy grants.
 *
 * @module
 */
import assert from "node:assert/strict";
import { readCounter } from "../_runtime.ts";
import { waitFor } from "../_kube.ts";
import { startRegistry, type TestRegistry } from "../_registry.ts";
import { asLayout, pushTestImage, storeFor } from "../host/image/_helpers.ts";
import { buildImage, hostPlatform } from "../../image/format.ts";
import { parseReference } from "../../image/reference.ts";
import { MT } from "../../image/registry.ts";
import { type Json, TestCluster, xdpCounterConfig } from "./_cluster.ts";
import { manifestDocuments } from "../../manifests/manifests.ts";
import { serviceAccountToken, tokenKubeconfig } from "./deploy/_secure.ts";

const root = new URL("../..", import.meta.url).pathname;
const xdpObject = `${root}bytecode/build/xdp_counter.bpf.o`;

/** Forwards `listenHost`:port (reachable from the node's namespace) to the registry on loopback. */
function forward(listenHost: string, reg: TestRegistry): { host: string; close: () => void } {
  const listener = Deno.listen({ hostname: listenHost, port: 0 });
  const [, port] = reg.host.split(":");
  (async () => {
    for await (const conn of listener) {
      Deno.connect({ hostname: "127.0.0.1", port: Number(port) }).then((up) => {
        conn.readable.pipeTo(up.writable).catch(() => {/* peer closed */});
        up.readable.pipeTo(conn.writable).catch(() => {/* peer closed */});
      }).catch(() => conn.close());
    }
  })().catch(() => {/* listener closed */});
  return { host: `${listenHost}:${(listener.addr as Deno.NetAddr).port}`, close: () => listener.close() };
}

/** The XDP counter from its real object file on every node. */
const xdpConfig = (name: string, spec: Record<string, unknown>) =>
  xdpCounterConfig(name, { nodeselector: {}, bytecode: { path: xdpObject }, ...spec });

/**
 * A kubeconfig for the controller's ServiceAccount with the RBAC `deno task deploy` grants it (the manifests'
 * ServiceAccounts, roles and bindings): the controller here reads pull secrets as it does in a cluster.
 */
async function controllerKubeconfig(cluster: TestCluster): Promise<string> {
  const kinds = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];
  const items = manifestDocuments().filter((d) => kinds.includes(d.kind));
  const r = await cluster.kube.kubectl(["apply", "-f", "-"], {
    stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items }),
  });
  assert.equal(r.code, 0, r.stderr);
  const token = await serviceAccountToken(cluster.kube, "bpfd-controller");
  return await tokenKubeconfig(cluster.kube, `${cluster.dir}/controller.kubeconfig`, token);
}

const loaded = (bp: Json) => bp?.status?.conditions?.find((c: Json) => c.type === "Loaded");

Deno.test("day two: modify, move, digest roll-out by resync, pull secrets, through the controller", async (t) => {
  const reg = await startRegistry({ auth: "htpasswd" });
  let fwd: { host: string; close: () => void } | undefined;
  const cluster = await TestCluster.start({ nodes: [], settings: { "bpfd.resync.seconds": "2" } });
  try {
    // The registry, as the node sees it: through a forwarder on the host end of the node's veth.
    const rt = await cluster.addNode("node-a", {}, 1);
    fwd = forward(rt.net.hostAddr, reg);
    await rt.kill("SIGTERM");
    rt.configFile = `${cluster.dir}/node-a.config.json`;
    await Deno.writeTextFile(
      rt.configFile,
      JSON.stringify({ images: { cacheDir: `${cluster.dir}/images`, insecureRegistries: [fwd.host] } }),
    );
    await rt.start();
    // The controller as its ServiceAccount, with the deployed RBAC (the later --kubeconfig wins).
    await cluster.startController("ctl", [
      "--log-level",
      "debug",
      "--kubeconfig",
      await controllerKubeconfig(cluster),
    ]);
    const kubectl = async (args: string[], stdin?: string) => {
      const r = await cluster.kube.kubectl(args, stdin !== undefined ? { stdin } : undefined);
      assert.equal(r.code, 0, r.stderr);
      return r;
    };
    const bp = async (config: string) => (await cluster.bpfPrograms(config))[0];
    const programIds = (b: Json) => Object.keys(b?.spec?.programs ?? {});
    const linkOf = async (id: string) =>
      (await rt.programs()).find((p: Json) => String(p.id) === id)?.links?.[0]?.attach;

    await t.step("a priority change keeps the program, its counter and every ping", async () => {
      await kubectl(["apply", "-f", "-"], xdpConfig("count", {}));
      const first = await waitFor("loaded", async () => {
        const b = await bp("count");
        return loaded(b)?.status === "True" && programIds(b).length === 1 ? b : undefined;
      }, 30000);
      const [id] = programIds(first);
      const pin = first.spec.programs[id].maps.xdp_packets;
      assert.equal(await rt.net.pingNode(5), 5);
      const before = readCounter(pin);
      const pings = rt.net.pingNode(300);
      await new Promise((r) => setTimeout(r, 500));
      await kubectl(["apply", "-f", "-"], xdpConfig("count", { priority: 10 }));
      await waitFor("priority 10 on the node", async () => (await linkOf(id))?.priority === 10, 30000);
      assert.equal(await pings, 300, "pings were lost during the change");
      const after = await bp("count");
      assert.deepEqual(programIds(after), [id], "the program was reloaded");
      assert.ok(readCounter(pin) >= before + 300, `counter ${readCounter(pin)} < ${before} + 300`);
    });

    await t.step("an attach-point change moves the program without a reload", async () => {
      await rt.net.exec("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p");
      await rt.net.exec("ip", "link", "set", "eth1", "up");
      await rt.net.exec("ip", "link", "set", "eth1p", "up");
      const [id] = programIds(await bp("count"));
      await kubectl(
        ["apply", "-f", "-"],
        xdpConfig("count", { priority: 10, attachpoint: { interface: "eth1" } }),
      );
      await waitFor("moved to eth1", async () => (await linkOf(id))?.iface === "eth1", 30000);
      const now = await bp("count");
      assert.deepEqual(programIds(now), [id]);
      await waitFor(
        "BpfProgram shows eth1",
        async () => (await bp("count")).spec.programs[id]?.attachpoint?.interface === "eth1",
        10000,
      );
      await kubectl(["delete", "bpfprogramconfig", "count", "--timeout=60s"]);
    });

    const image = `${fwd.host}/bytecode/xdp_counter:latest`;
    const store = storeFor({ ...reg, host: fwd.host } as TestRegistry, `${cluster.dir}/push-cache`);
    const user = Object.entries(reg.users)[0];
    const auth = { username: user[0], password: user[1] };
    const dockerConfig = (password: string) =>
      btoa(JSON.stringify({ auths: { [fwd!.host]: { auth: btoa(`${auth.username}:${password}`) } } }));
    const secret = (name: string, data: Record<string, string>, type = "kubernetes.io/dockerconfigjson") =>
      cluster.core.createNamespacedSecret({ namespace: "bpfd", body: { metadata: { name }, type, data } });
    await secret("regcred", { ".dockerconfigjson": dockerConfig(auth.password) });
    const v1 = await pushTestImage(
      store,
      { ...reg, host: fwd.host } as TestRegistry,
      "bytecode/xdp_counter:latest",
      {},
      auth,
    );
    const imageSpec = (secretName: string) => ({
      bytecode: { imageurl: image, imagepullpolicy: "Always", imagepullsecret: { name: secretName } },
    });

    await t.step(
      "a private registry image loads through a pull secret; status shows its digest",
      async () => {
        await kubectl(["apply", "-f", "-"], xdpConfig("private", imageSpec("regcred")));
        await waitFor("loaded", async () => loaded(await bp("private"))?.status === "True", 60000);
        const cfg = await waitFor("digest in status", async () => {
          const c = await cluster.config("private");
          return c?.status?.digests?.[v1] ? c : undefined;
        }, 10000);
        assert.deepEqual(cfg.status.digests[v1], ["node-a"]);
        // The node keeps no credentials: nothing in its state dir, image cache or log holds the password.
        const found = await new Deno.Command("grep", {
          args: ["-rl", auth.password, rt.dir, `${cluster.dir}/images`, rt.logFile],
          stdout: "piped",
          stderr: "null",
        }).output();
        assert.equal(new TextDecoder().decode(found.stdout), "", "the password was written to disk");
      },
    );

    await t.step("a re-pushed tag is rolled out by the resync (a new program, the new digest)", async () => {
      const [oldId] = programIds(await bp("private"));
      const v2 = await pushTestImage(
        store,
        { ...reg, host: fwd!.host } as TestRegistry,
        "bytecode/xdp_counter:latest",
        { maps: { xdp_packets: "array", extra: "hash" } },
        auth,
      );
      assert.notEqual(v2, v1);
      const cfg = await waitFor("v2 rolled out", async () => {
        const c = await cluster.config("private");
        return c?.status?.digests?.[v2]?.length === 1 ? c : undefined;
      }, 30000);
      assert.equal(cfg.status.digests[v1], undefined);
      assert.notDeepEqual(programIds(await bp("private")), [oldId]);
      await kubectl(["delete", "bpfprogramconfig", "private", "--timeout=60s"]);
    });

    await t.step("a manifest list without this node's platform is a condition naming it", async () => {
      const url = `${fwd!.host}/bytecode/arm-only:v1`;
      const ref = parseReference(url);
      const client = await store.client(ref, { url, auth });
      const arm = await buildImage({
        objects: [{ name: "xdp_counter.bpf.o", bytes: await Deno.readFile(xdpObject) }],
        programs: { xdp_counter: "xdp" },
        architecture: "arm64",
      });
      for (const b of asLayout(arm).blobs) await client.pushBlob(ref.repository, b.digest, b.bytes);
      await client.pushManifest(ref.repository, arm.manifestDigest, MT.ociManifest, arm.manifest);
      const index = JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.ociIndex,
        manifests: [{
          mediaType: MT.ociManifest,
          digest: arm.manifestDigest,
          size: arm.manifest.length,
          platform: { os: "linux", architecture: "arm64", variant: "v8" },
        }],
      });
      await client.pushManifest(ref.repository, "v1", MT.ociIndex, new TextEncoder().encode(index));
      await kubectl(
        ["apply", "-f", "-"],
        xdpConfig("arm-only", {
          bytecode: { imageurl: url, imagepullsecret: { name: "regcred" } },
        }),
      );
      const c = await waitFor("arm-only fails", async () => {
        const x = loaded(await bp("arm-only"));
        return x?.status === "False" ? x : undefined;
      }, 30000);
      const { os, architecture } = hostPlatform();
      assert.match(
        c.message,
        new RegExp(
          `no manifest for this node's platform ${os}/${architecture} in the list \\(has: linux/arm64/v8\\)`,
        ),
      );
      await kubectl(["delete", "bpfprogramconfig", "arm-only", "--timeout=60s"]);
    });

    await t.step(
      "a missing Secret, one without .dockerconfigjson, wrong credentials: clear conditions",
      async () => {
        await secret("opaque", { password: btoa("x") }, "Opaque");
        await secret("wrong", { ".dockerconfigjson": dockerConfig("wrong-password") });
        const cases: Array<[string, RegExp]> = [
          ["nosuch", /pull secret bpfd\/nosuch not found/],
          ["opaque", /pull secret bpfd\/opaque has no \.dockerconfigjson/],
          ["wrong", /401|unauthori[sz]ed|credentials/i],
        ];
        for (const [name] of cases) {
          await kubectl(["apply", "-f", "-"], xdpConfig(`bad-${name}`, imageSpec(name)));
        }
        for (const [name, re] of cases) {
          const c = await waitFor(`bad-${name} fails`, async () => {
            const x = loaded(await bp(`bad-${name}`));
            return x?.status === "False" ? x : undefined;
          }, 30000);
          assert.match(c.message, re);
          const cfg = await waitFor(`bad-${name} summary`, async () => {
            const x = await cluster.config(`bad-${name}`);
            return x?.status?.nodes?.failing === 1 ? x : undefined;
          }, 10000);
          assert.match(cfg.status.conditions[0].message, re);
        }
        // The controller keeps serving other configs meanwhile.
        await kubectl(["apply", "-f", "-"], xdpConfig("ok", {}));
        await waitFor("ok loaded", async () => loaded(await bp("ok"))?.status === "True", 30000);
        await kubectl(["delete", "bpfprogramconfigs", "--all", "--timeout=60s"]);
        assert.deepEqual(await rt.programs(), []);
      },
    );
  } catch (err) {
    console.error(await cluster.logs(40));
    throw err;
  } finally {
    fwd?.close();
    await cluster.stop();
    await reg.stop();
  }
});
