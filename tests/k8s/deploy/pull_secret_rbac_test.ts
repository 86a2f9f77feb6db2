/**
 * The controller's access to pull secrets (`bytecode.imagepullsecret`) as `deno task deploy` grants it, on a
 * real kube-apiserver with RBAC: with a real token of the `bpfd/bpfd-controller` ServiceAccount, the
 * controller's own Secret reader (controller/kube.ts) reads a Secret in bpfd's namespace, is refused one in
 * another namespace with an error that says what to grant, cannot list or change Secrets, and reads the other
 * namespace's once the Role and RoleBinding docs/day-two.md describes are there.
 * @module
 */
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { startKube } from "../../_kube.ts";
import { KubeStore } from "../../../controller/kube.ts";
import { PullSecretError } from "../../../controller/pull_secrets.ts";
import { Logger } from "../../../lib/log.ts";
import { serviceAccountToken, tokenKubeconfig } from "./_secure.ts";

const root = new URL("../../..", import.meta.url).pathname;

const dockerConfig = (password: string) =>
  JSON.stringify({ auths: { "registry.test.invalid": { auth: btoa(`puller:${password}`) } } });

Deno.test("deployed RBAC: the controller's ServiceAccount reads pull secrets in bpfd only, unless granted elsewhere", async () => {
  const kube = await startKube();
  try {
    const deploy = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${root}deploy/deploy.ts`, "deploy", "--kubeconfig", kube.kubeconfig()],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(deploy.code, 0, new TextDecoder().decode(deploy.stderr));
    const core = kube.kubeConfig().makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: "team-a" } } });
    for (const [namespace, password] of [["bpfd", "in-bpfd"], ["team-a", "in-team-a"]]) {
      await core.createNamespacedSecret({
        namespace,
        body: {
          metadata: { name: "regcred" },
          type: "kubernetes.io/dockerconfigjson",
          data: { ".dockerconfigjson": btoa(dockerConfig(password)) },
        },
      });
    }

    // The controller's own reader, with a real token of its ServiceAccount (what its pod mounts).
    const token = await serviceAccountToken(kube, "bpfd-controller");
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(await tokenKubeconfig(kube, `${kube.dir}/controller.kubeconfig`, token));
    const log = new Logger("error");
    const store = new KubeStore({
      kc,
      namespace: "bpfd",
      nodePort: () => 50052,
      identity: "rbac-test",
      log: () => log,
    }, { config() {}, program() {}, node() {}, settings() {} });

    // bpfd's namespace (the default of imagepullsecret.namespace): readable, the credentials decoded.
    assert.equal(await store.pullSecret({ name: "regcred" }), dockerConfig("in-bpfd"));
    assert.equal(await store.pullSecret({ name: "regcred", namespace: "bpfd" }), dockerConfig("in-bpfd"));
    // A Secret that is not there is "not found", not "forbidden": the Role grants get in bpfd.
    await assert.rejects(
      store.pullSecret({ name: "nosuch" }),
      (e) => e instanceof PullSecretError && /pull secret bpfd\/nosuch not found/.test(e.message),
    );
    // Another namespace: refused, and the error says what to grant.
    await assert.rejects(
      store.pullSecret({ name: "regcred", namespace: "team-a" }),
      (e) =>
        e instanceof PullSecretError &&
        e.message ===
          "pull secret team-a/regcred: the controller may not read it (grant get on secrets in team-a)",
    );
    // Only get: no list, no watch, no writes, in bpfd either.
    const sa = kc.makeApiClient(k8s.CoreV1Api);
    const forbidden = (e: unknown) => (e as { code?: number }).code === 403;
    await assert.rejects(sa.listNamespacedSecret({ namespace: "bpfd" }), forbidden);
    await assert.rejects(sa.listSecretForAllNamespaces(), forbidden);
    await assert.rejects(
      sa.createNamespacedSecret({ namespace: "bpfd", body: { metadata: { name: "mine" } } }),
      forbidden,
    );
    await assert.rejects(sa.deleteNamespacedSecret({ name: "regcred", namespace: "bpfd" }), forbidden);
    const can = async (args: string[]) =>
      (await kube.kubectl(["auth", "can-i", ...args, "--as=system:serviceaccount:bpfd:bpfd-controller"]))
        .stdout.trim();
    assert.equal(await can(["get", "secrets", "-n", "bpfd"]), "yes");
    assert.equal(await can(["get", "secrets", "-n", "kube-system"]), "no");

    // The grant docs/day-two.md describes: a Role and RoleBinding in team-a for bpfd/bpfd-controller.
    const grant = await kube.kubectl(["apply", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "Role",
            metadata: { name: "bpfd-pull-secrets", namespace: "team-a" },
            rules: [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"], resourceNames: ["regcred"] }],
          },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "RoleBinding",
            metadata: { name: "bpfd-pull-secrets", namespace: "team-a" },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "bpfd-pull-secrets" },
            subjects: [{ kind: "ServiceAccount", name: "bpfd-controller", namespace: "bpfd" }],
          },
        ],
      }),
    });
    assert.equal(grant.code, 0, grant.stderr);
    await assert.rejects(sa.listNamespacedSecret({ namespace: "team-a" }), forbidden);
    assert.equal(
      await store.pullSecret({ name: "regcred", namespace: "team-a" }),
      dockerConfig("in-team-a"),
    );
  } finally {
    await kube.stop();
  }
});
