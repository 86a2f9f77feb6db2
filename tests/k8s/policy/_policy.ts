/**
 * Helpers for the BpfPolicy tests on a real API server: bpfd deployed by `deploy()` with its webhooks
 * pointing at a controller process on 127.0.0.1 (its serving certificate from the Secret deploy made),
 * editor rights and real tokens for the table's users (token-file users and ServiceAccounts).
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { freePort, type Kube, waitFor } from "../../_kube.ts";
import { deploy } from "../../../deploy/deploy.ts";
import { ControllerProcess } from "../_cluster.ts";
import { serviceAccountToken, tokenKubeconfig } from "../deploy/_secure.ts";
import { USERS } from "../../unit/policy/_cases.ts";

/** A kubeconfig file per table user. */
export type Kubeconfigs = Record<keyof typeof USERS, string>;

/** Deploys bpfd with its webhook at a controller process on 127.0.0.1; `extra` controller flags. */
export async function deployWithWebhook(
  kube: Kube,
  dir: string,
  extra: string[] = [],
): Promise<ControllerProcess> {
  const port = freePort();
  const url = `https://127.0.0.1:${port}`;
  await deploy({ kc: kube.kubeConfig(), image: "registry.example/bpfd:test", webhookUrl: url });
  const core = kube.kubeConfig().makeApiClient(k8s.CoreV1Api);
  const secret = await core.readNamespacedSecret({ name: "bpfd-webhook-tls", namespace: "bpfd" });
  await Deno.writeTextFile(`${dir}/webhook.crt`, atob(secret.data!["tls.crt"]));
  await Deno.writeTextFile(`${dir}/webhook.key`, atob(secret.data!["tls.key"]));
  const ctl = new ControllerProcess("ctl", [
    "--kubeconfig",
    kube.kubeconfig(),
    "--namespace",
    "bpfd",
    "--no-leader-election",
    "--webhook-listen",
    `127.0.0.1:${port}`,
    "--webhook-cert",
    `${dir}/webhook.crt`,
    "--webhook-key",
    `${dir}/webhook.key`,
    ...extra,
  ], `${dir}/controller.log`);
  await ctl.start();
  const client = Deno.createHttpClient({ caCerts: [atob(secret.data!["ca.crt"])] });
  try {
    await waitFor(
      "webhook up",
      async () => {
        const r = await fetch(`${url}/healthz`, { client, signal: AbortSignal.timeout(1000) });
        await r.body?.cancel();
        return r.ok;
      },
      30000,
      200,
    );
  } finally {
    client.close();
  }
  return ctl;
}

/** Namespaces and ServiceAccounts of the table, editor rights for every table user, a kubeconfig each. */
export async function tableUsers(kube: Kube, dir: string): Promise<Kubeconfigs> {
  const kc = kube.kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  for (const [ns, name] of [["monitoring", "agent"], ["team-dev", "builder"]]) {
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
  }
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: "policy-test-editors" },
      roleRef: {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "ClusterRole",
        name: "bpfd-bpfprogramconfig-editor",
      },
      subjects: [
        ...["alice", "bob", "carol"].map((name) => ({
          kind: "User",
          name,
          apiGroup: "rbac.authorization.k8s.io",
        })),
        { kind: "ServiceAccount", name: "agent", namespace: "monitoring" },
        { kind: "ServiceAccount", name: "builder", namespace: "team-dev" },
      ],
    },
  });
  return {
    alice: kube.kubeconfig("alice"),
    bob: kube.kubeconfig("bob"),
    carol: kube.kubeconfig("carol"),
    agent: await tokenKubeconfig(
      kube,
      `${dir}/agent.kubeconfig`,
      await serviceAccountToken(kube, "agent", { namespace: "monitoring" }),
    ),
    builder: await tokenKubeconfig(
      kube,
      `${dir}/builder.kubeconfig`,
      await serviceAccountToken(kube, "builder", { namespace: "team-dev" }),
    ),
  };
}

/**
 * Removes the webhook registrations `deploy()` made, for tests that run no controller to answer them
 * (with failurePolicy Fail, every config would be refused) and that are not about BpfPolicy.
 */
export async function removeWebhooks(kube: Kube): Promise<void> {
  const r = await kube.kubectl([
    "delete",
    "mutatingwebhookconfiguration/bpfd-requested-by",
    "validatingwebhookconfiguration/bpfd-policy",
  ]);
  if (r.code !== 0) throw new Error(`removing the webhooks: ${r.stderr}`);
}
