// The seed's deployment models 2 and 3 end to end on a real API server, with bpfd deployed by `deploy()`
// and every component on the manifests' ServiceAccounts: a node runtime process (TLS with its own key and a
// certificate the controller signed through the CSR API, TokenReview/SAR; its own credentials a bpfd-node
// token bound to its pod), a controller process (the bpfd-controller token, --node-ca and its key; a
// token per node for its calls),
// an operator (user bob, bound to bpfd-bpfprogramconfig-editor) creating a BpfProgramConfig with the
// helper library, real traffic counted by the XDP program, and the example application run as an
// unprivileged process (uid 65534, group bpfd, no capabilities; user alice, bound to
// bpfd-bpfprogram-viewer) reading the counter through the pin path the library found. Without group bpfd
// the same process cannot open the map.
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { startKube, waitFor } from "../../_kube.ts";
import { bytecodePath } from "../../_runtime.ts";
import { NodeNet } from "../_nodes.ts";
import { deploy } from "../../../deploy/deploy.ts";
import { removeWebhooks } from "../policy/_policy.ts";
import { BpfProgramConfigs, findNodeProgram, InvalidSpecError } from "../../../mod.ts";
import { nodeToken, SecureRuntime, serviceAccountToken, tokenKubeconfig } from "./_secure.ts";

const root = new URL("../../..", import.meta.url).pathname;

async function bpfdGid(): Promise<number> {
  const line = (await Deno.readTextFile("/etc/group")).split("\n").find((l) => l.startsWith("bpfd:"));
  if (!line) throw new Error("no group bpfd on this machine (scripts/setup.sh creates it)");
  return Number(line.split(":")[2]);
}

/** A DENO_DIR the unprivileged user can read: hard links to this process's npm cache (no copy). */
async function readableDenoDir(dir: string): Promise<string> {
  const info = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
    .output();
  const denoDir = JSON.parse(new TextDecoder().decode(info.stdout)).denoDir as string;
  const target = `${dir}/deno-dir`;
  await Deno.mkdir(target);
  const r = await new Deno.Command("cp", {
    args: ["-al", `${denoDir}/npm`, `${target}/npm`],
    stderr: "piped",
  })
    .output();
  if (r.code !== 0) throw new Error(`cp -al: ${new TextDecoder().decode(r.stderr)}`);
  await Deno.chown(target, 65534, 65534);
  return target;
}

async function runExample(
  args: string[],
  opts: { gid: number; groups: number | null; denoDir: string },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const ids = opts.groups === null
    ? ["--reuid=65534", "--regid=65534", "--clear-groups"]
    : ["--reuid=65534", `--regid=${opts.gid}`, `--groups=${opts.groups}`];
  const out = await new Deno.Command("setpriv", {
    args: [
      ...ids,
      "--inh-caps=-all",
      "--bounding-set=-all",
      "--no-new-privs",
      "--pdeathsig",
      "KILL",
      "--",
      Deno.execPath(),
      "run",
      "--cached-only",
      "--frozen", // versions from deno.lock (the cache has no registry metadata for them), never written
      "--no-check",
      "--allow-all",
      `${root}examples/map_reader.ts`,
      ...args,
    ],
    env: { DENO_DIR: opts.denoDir, HOME: "/nonexistent", NO_COLOR: "1" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("models 2 and 3: operator creates a config with the library, unprivileged agent reads its counter", async () => {
  const gid = await bpfdGid();
  const kube = await startKube();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-app-" });
  await Deno.chmod(dir, 0o711);
  let rt: SecureRuntime | undefined;
  let net: NodeNet | undefined;
  let controller: Deno.ChildProcess | undefined;
  const controllerLog = `${dir}/controller.log`;
  try {
    await deploy({ kc: kube.kubeConfig(), image: "registry.example/bpfd:test" });
    await removeWebhooks(kube); // BpfPolicy's admission is tested in tests/k8s/policy/
    // The controller trusts, and signs node runtimes' certificates with, the CA deploy made.
    const core = kube.kubeConfig().makeApiClient(k8s.CoreV1Api);
    const secret = await core.readNamespacedSecret({ name: "bpfd-node-ca", namespace: "bpfd" });
    const ca = { crt: `${dir}/ca.crt`, key: `${dir}/ca.key` };
    await Deno.writeTextFile(ca.crt, atob(secret.data!["ca.crt"]), { mode: 0o600 });
    await Deno.writeTextFile(ca.key, atob(secret.data!["ca.key"]), { mode: 0o600 });
    // The Node (its address goes into the runtime's certificate) and the runtime's pod, which its token is
    // bound to (no kubelet here: the pod only exists).
    await core.createNode({ body: { metadata: { name: "node-a", labels: { "bpfd.io/test": "app" } } } });
    await core.replaceNodeStatus({
      name: "node-a",
      body: {
        ...await core.readNode({ name: "node-a" }),
        status: { addresses: [{ type: "InternalIP", address: "127.0.0.1" }] },
      },
    });
    await core.createNamespacedPod({
      namespace: "bpfd",
      body: {
        metadata: { name: "bpfd-node-a" },
        spec: {
          nodeName: "node-a",
          serviceAccountName: "bpfd-node",
          automountServiceAccountToken: false,
          containers: [{ name: "runtime", image: "registry.example/bpfd:test" }],
        },
      },
    });
    const controllerKc = await tokenKubeconfig(
      kube,
      `${dir}/controller.kubeconfig`,
      await serviceAccountToken(kube, "bpfd-controller"),
    );
    controller = new Deno.Command("setpriv", {
      args: [
        "--pdeathsig",
        "KILL",
        "--",
        "sh",
        "-c",
        `exec "$@" >>'${controllerLog}' 2>&1`,
        "sh",
        Deno.execPath(),
        "run",
        "-A",
        `${root}controller/main.ts`,
        "--kubeconfig",
        controllerKc,
        "--node-ca",
        ca.crt,
        "--node-ca-key",
        ca.key,
        "--id",
        "c1",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    rt = await SecureRuntime.start(dir, { ca: ca.crt, cert: `${dir}/tls.crt`, key: `${dir}/tls.key` }, {
      mode: "kubernetes",
      kubeconfig: await tokenKubeconfig(
        kube,
        `${dir}/node.kubeconfig`,
        await serviceAccountToken(kube, "bpfd-node", { pod: "bpfd-node-a" }),
      ),
      nodeName: "node-a",
    }, { request: true }).catch(async (e) => {
      throw new Error(`${e.message}\ncontroller log:\n${await Deno.readTextFile(controllerLog)}`);
    });
    const started = rt;
    await core.patchNode(
      { name: "node-a", body: { metadata: { annotations: { "bpfd.io/address": started.url } } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    // The node's API as an administrator reaches it: with a token for this node.
    const nodeAdmin = await nodeToken(kube, "bpfd-controller", "node-a");
    // An index of its own (10.215.<n>.0/24): other test processes count theirs from 1.
    net = await NodeNet.create(151 + (Deno.pid % 99));
    for (
      const [user, role] of [["bob", "bpfd-bpfprogramconfig-editor"], ["alice", "bpfd-bpfprogram-viewer"]]
    ) {
      const r = await kube.kubectl([
        "create",
        "clusterrolebinding",
        `${user}-x`,
        `--clusterrole=${role}`,
        `--user=${user}`,
      ]);
      assert.equal(r.code, 0, r.stderr);
    }

    // Model 3: the operator (bob) with the library. A bad spec is refused before anything is sent.
    const configs = new BpfProgramConfigs(kube.kubeConfig("bob"));
    const spec = {
      name: "xdp_counter",
      type: "XDP" as const,
      nodeselector: { matchLabels: { "bpfd.io/test": "app" } },
      attachpoint: { interface: net.hostIf },
      bytecode: { path: bytecodePath("xdp_counter") },
    };
    await assert.rejects(
      configs.create("xdp-counter", { ...spec, attachpoint: {} }),
      (e) => e instanceof InvalidSpecError && e.field === "spec.attachpoint.interface",
    );
    assert.equal(await configs.get("xdp-counter"), undefined);
    await configs.apply("xdp-counter", spec, { labels: { app: "demo" } });
    try {
      await configs.waitLoaded("xdp-counter", { timeoutMs: 30000 });
    } catch (e) {
      throw new Error(`${(e as Error).message}\ncontroller log:\n${await Deno.readTextFile(controllerLog)}`);
    }
    // An update through the library (same spec with a priority): applied, still loaded.
    await configs.apply("xdp-counter", { ...spec, priority: 10 });
    assert.equal((await configs.get("xdp-counter"))!.spec.priority, 10);
    // (The config's summary can say Loaded before the node has replaced the program: wait for the node.)
    await waitFor("the node runs the updated spec", async () => {
      const l = (await rt!.call("list", {}, nodeAdmin)).body.programs;
      return l.length === 1 && l[0].links?.[0]?.attach?.priority === 10;
    }, 30000);
    await configs.waitLoaded("xdp-counter", { timeoutMs: 30000 });

    // The node shows who loaded it (the controller's ServiceAccount, over TLS with its token) and why.
    const listed = await rt.call("list", {}, nodeAdmin);
    assert.equal(listed.body.programs.length, 1);
    const prog = listed.body.programs[0].program;
    assert.equal(prog.loadedBy.user, "system:serviceaccount:bpfd:bpfd-controller");
    assert.match(prog.loadedBy.via, /^tls token/);
    assert.equal(prog.metadata["bpfd.io/config"], "xdp-counter");

    // Real traffic through the node's interface.
    assert.ok(await net.pingHost(5) >= 5);

    // Model 2 in-process (as alice): the library finds the pin path.
    const found = await findNodeProgram({
      kc: kube.kubeConfig("alice"),
      config: "xdp-counter",
      node: "node-a",
    });
    assert.ok(found.maps.xdp_packets?.startsWith(`${dir}/state/fs/maps/`), JSON.stringify(found.maps));

    // Model 2 as an unprivileged process: uid 65534, group bpfd only, no capabilities at all.
    const aliceKc = await tokenKubeconfig(kube, `${dir}/alice.kubeconfig`, kube.users.alice.token);
    await Deno.chmod(aliceKc, 0o644);
    const denoDir = await readableDenoDir(dir);
    const args = [
      "--config",
      "xdp-counter",
      "--node",
      "node-a",
      "--kubeconfig",
      aliceKc,
      "--map",
      "xdp_packets",
    ];
    const agent = await runExample(args, { gid, groups: gid, denoDir });
    assert.equal(agent.code, 0, agent.stderr);
    const reading = JSON.parse(agent.stdout.trim().split("\n").at(-1)!);
    assert.equal(reading.path, found.maps.xdp_packets);
    assert.ok(Number(reading.value) >= 5, `counter ${reading.value} after 5 pings`);
    // The counter keeps counting: more pings, a higher value.
    assert.ok(await net.pingHost(3) >= 3);
    const again = await runExample(args, { gid, groups: gid, denoDir });
    assert.equal(again.code, 0, again.stderr);
    assert.ok(Number(JSON.parse(again.stdout.trim()).value) >= Number(reading.value) + 3);
    // Without group bpfd the same process cannot reach the pin.
    const outsider = await runExample(args, { gid, groups: null, denoDir });
    assert.notEqual(outsider.code, 0);
    assert.match(outsider.stderr, /EACCES|permission denied/i);

    // The operator deletes the config: every node unloads before it is gone.
    assert.equal(await configs.delete("xdp-counter", { wait: true, timeoutMs: 30000 }), true);
    await waitFor(
      "node unloaded",
      async () => (await rt!.call("list", {}, nodeAdmin)).body.programs.length === 0,
    );

    // The manifests' RBAC was enough for everything the controller did (watches, Lease, Events, writes).
    const log = await Deno.readTextFile(controllerLog);
    assert.doesNotMatch(log, /forbidden|cannot (get|list|watch|create|update|patch)/i, log);
    assert.match(log, /reconciling/, "the controller led (Lease acquired on its own token)");
  } finally {
    if (controller) {
      try {
        controller.kill("SIGTERM");
      } catch { /* gone */ }
      await controller.status;
    }
    await rt?.destroy(await nodeToken(kube, "bpfd-controller", "node-a").catch(() => undefined));
    await net?.destroy();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await kube.stop();
  }
});
