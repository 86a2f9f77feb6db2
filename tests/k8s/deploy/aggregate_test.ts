// The editor role and the built-in `edit` role on a real API server, with kube-controller-manager's
// clusterrole-aggregation controller running: by default a user bound to `edit` can read BpfPrograms
// (the viewer is aggregated) but cannot create a BpfProgramConfig; `deploy --aggregate-to-edit` lets
// them; deploying again without the flag takes it back.
import assert from "node:assert/strict";
import { KUBE_CACHE, startKube, waitFor } from "../../_kube.ts";
import { deploy } from "../../../deploy/deploy.ts";
import { removeWebhooks } from "../policy/_policy.ts";

const config = JSON.stringify({
  apiVersion: "bpfd.io/v1alpha1",
  kind: "BpfProgramConfig",
  metadata: { name: "by-edit" },
  spec: {
    name: "pass",
    type: "XDP",
    nodeselector: {},
    attachpoint: { interface: "eth0" },
    bytecode: { imageurl: "quay.io/bpfd-bytecode/xdp_pass:latest" },
  },
});

Deno.test("deploy: `edit` may create BpfProgramConfigs only with --aggregate-to-edit", async () => {
  const kube = await startKube();
  // Only the controller that fills aggregated ClusterRoles; it stops with this test (pdeathsig).
  const kcm = new Deno.Command("setpriv", {
    args: [
      "--pdeathsig",
      "KILL",
      "--",
      `${KUBE_CACHE}/bin/kube-controller-manager`,
      `--kubeconfig=${kube.kubeconfig()}`,
      "--controllers=clusterrole-aggregation",
      "--leader-elect=false",
      "--secure-port=0",
      "--port=0",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const kcmLog = kcm.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  (async () => {
    for (let r = await kcmLog.read(); !r.done; r = await kcmLog.read()) log = (log + r.value).slice(-4000);
  })().catch(() => {});
  try {
    const bound = await kube.kubectl([
      "create",
      "clusterrolebinding",
      "carol-edit",
      "--clusterrole=edit",
      "--user=carol",
    ]);
    assert.equal(bound.code, 0, bound.stderr);
    const can = async (verb: string, resource: string) =>
      (await kube.kubectl(["auth", "can-i", verb, resource], { user: "carol" })).stdout.trim() === "yes";

    await deploy({ kc: kube.kubeConfig(), image: "registry.example/bpfd:test" });
    // The aggregation controller works (the viewer reaches `edit`), and still `edit` may not create configs.
    await waitFor("the viewer aggregated into edit", () => can("list", "bpfprograms.bpfd.io"), 30000, 250)
      .catch((e) => Promise.reject(new Error(`${e.message}\nkube-controller-manager:\n${log}`)));
    assert.equal(await can("create", "bpfprogramconfigs.bpfd.io"), false);
    const refused = await kube.kubectl(["create", "-f", "-"], { user: "carol", stdin: config });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /forbidden/i);

    // The command line's flag.
    const cli = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../../../deploy/deploy.ts", import.meta.url).pathname,
        "deploy",
        "--kubeconfig",
        kube.kubeconfig(),
        "--image",
        "registry.example/bpfd:test",
        "--aggregate-to-edit",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(cli.code, 0, new TextDecoder().decode(cli.stderr));
    assert.match(
      new TextDecoder().decode(cli.stdout),
      /clusterrole\/bpfd-bpfprogramconfig-editor configured/,
    );
    await waitFor(
      "the editor aggregated into edit",
      () => can("create", "bpfprogramconfigs.bpfd.io"),
      30000,
      250,
    );
    await removeWebhooks(kube); // no controller answers them here; tests/k8s/policy/ covers admission
    const created = await kube.kubectl(["create", "-f", "-"], { user: "carol", stdin: config });
    assert.equal(created.code, 0, created.stderr);
    assert.equal(await can("create", "bpfprogramconfigs.bpfd.io"), true);

    // Deployed again without the flag: server-side apply drops the labels, the aggregation follows.
    await deploy({ kc: kube.kubeConfig(), image: "registry.example/bpfd:test" });
    await waitFor(
      "the editor out of edit again",
      async () => !(await can("create", "bpfprogramconfigs.bpfd.io")),
      30000,
      250,
    );
  } finally {
    try {
      kcm.kill("SIGTERM");
    } catch { /* gone */ }
    await kcm.status;
    await kube.stop();
  }
});
