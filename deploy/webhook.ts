/**
 * The webhooks' registration for `deno task deploy`: the serving certificate (Secret
 * `bpfd/bpfd-webhook-tls`, kept while it covers the host), the MutatingWebhookConfiguration
 * `bpfd-requested-by` and the ValidatingWebhookConfiguration `bpfd-policy`; undeploy removes them first.
 *
 * @example
 * ```ts
 * await deployWebhook(kc, { webhookUrl: "https://127.0.0.1:9443" }); // default: the controllers' Service
 * ```
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { WEBHOOK_SERVICE, WEBHOOK_TLS_SECRET } from "../manifests/policy.ts";
import { MANAGED_BY, MANAGED_LABEL } from "./tls.ts";
import { certificateFacts, issueCa, keyAndRequest, signServing } from "../lib/pki.ts";

const NS = "bpfd";
const MUTATING = "bpfd-requested-by";
const VALIDATING = "bpfd-policy";

/** What a step of deploy did (deploy.ts's Change). */
export interface WebhookChange {
  kind: string;
  name: string;
  namespace?: string;
  action: "created" | "configured" | "unchanged" | "deleted" | "absent";
  note?: string;
}

const b64 = (s: string) => btoa(s);
const unb64 = (s: string | undefined) => s ? atob(s) : "";

/** The webhook's serving certificate: kept when it covers `host`, made otherwise. */
async function ensureWebhookTls(
  core: k8s.CoreV1Api,
  host: string,
): Promise<{ ca: string; change: WebhookChange }> {
  let cur: k8s.V1Secret | undefined;
  try {
    cur = await core.readNamespacedSecret({ name: WEBHOOK_TLS_SECRET, namespace: NS });
  } catch (e) {
    if ((e as { code?: number }).code !== 404) throw e;
  }
  const base = { kind: "Secret", name: WEBHOOK_TLS_SECRET, namespace: NS };
  if (cur) {
    const facts = await certificateFacts(unb64(cur.data?.["tls.crt"])).catch(() => undefined);
    const mine = cur.metadata?.labels?.[MANAGED_LABEL] === MANAGED_BY;
    if (!mine || (facts?.sans.has(host) && facts.notAfter > Date.now() + 30 * 86400_000)) {
      return {
        ca: unb64(cur.data?.["ca.crt"]),
        change: { ...base, action: "unchanged", note: mine ? undefined : "user's Secret" },
      };
    }
  }
  const ip = /^[0-9.]+$|:/.test(host);
  const ca = await issueCa("bpfd-webhook-ca", 3650);
  const { key, csr } = await keyAndRequest("bpfd-webhook");
  const made = {
    ca: ca.cert,
    key,
    cert: await signServing(csr, ca, { ips: ip ? [host] : [], dns: ip ? [] : [host] }, 365),
  };
  const body: k8s.V1Secret = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: WEBHOOK_TLS_SECRET,
      namespace: NS,
      labels: { "app.kubernetes.io/part-of": "bpfd", [MANAGED_LABEL]: MANAGED_BY },
      ...(cur ? { resourceVersion: cur.metadata?.resourceVersion } : {}),
    },
    type: "kubernetes.io/tls",
    data: { "ca.crt": b64(made.ca), "tls.crt": b64(made.cert), "tls.key": b64(made.key) },
  };
  if (cur) await core.replaceNamespacedSecret({ name: WEBHOOK_TLS_SECRET, namespace: NS, body });
  else await core.createNamespacedSecret({ namespace: NS, body });
  return { ca: made.ca, change: { ...base, action: cur ? "configured" : "created", note: `for ${host}` } };
}

/** The two webhook registrations; `url` (e.g. a controller outside the cluster) or the Service. */
export function webhookConfigurations(caPem: string, url?: string) {
  const client = (path: string) => ({
    caBundle: b64(caPem),
    ...(url
      ? { url: `${url.replace(/\/$/, "")}${path}` }
      : { service: { namespace: NS, name: WEBHOOK_SERVICE, path, port: 443 } }),
  });
  const common = {
    admissionReviewVersions: ["v1"],
    sideEffects: "None",
    timeoutSeconds: 10,
    // Security policy: when no controller answers, configs are refused (the nodes check again anyway).
    failurePolicy: "Fail",
    matchPolicy: "Equivalent",
  };
  const configs = (operations: string[]) => [{
    apiGroups: ["bpfd.io"],
    apiVersions: ["v1alpha1"],
    operations,
    resources: ["bpfprogramconfigs"],
    scope: "Cluster",
  }];
  const labels = { "app.kubernetes.io/part-of": "bpfd" };
  return [
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingWebhookConfiguration",
      metadata: { name: MUTATING, labels },
      webhooks: [{
        ...common,
        name: "requested-by.bpfprogramconfigs.bpfd.io",
        clientConfig: client("/mutate/bpfprogramconfigs"),
        rules: configs(["CREATE", "UPDATE"]),
        reinvocationPolicy: "IfNeeded",
      }],
    },
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingWebhookConfiguration",
      metadata: { name: VALIDATING, labels },
      webhooks: [
        {
          ...common,
          name: "policy.bpfprogramconfigs.bpfd.io",
          clientConfig: client("/validate/bpfprogramconfigs"),
          rules: configs(["CREATE", "UPDATE"]),
        },
        {
          ...common,
          // The CRD schema refuses most bad policies; an admin must be able to fix policy with no controller.
          failurePolicy: "Ignore",
          name: "bpfpolicies.bpfd.io",
          clientConfig: client("/validate/bpfpolicies"),
          rules: [{ ...configs(["CREATE", "UPDATE"])[0], resources: ["bpfpolicies"] }],
        },
      ],
    },
  ];
}

/**
 * Makes the certificate and registers the webhooks (at `url`, or the controllers' Service); `onChange` hears
 * each step as it is done.
 */
export async function deployWebhook(
  kc: k8s.KubeConfig,
  opts: { webhookUrl?: string; onChange?: (c: WebhookChange) => void } = {},
): Promise<WebhookChange[]> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const host = opts.webhookUrl
    ? new URL(opts.webhookUrl).hostname.replace(/^\[|\]$/g, "")
    : `${WEBHOOK_SERVICE}.${NS}.svc`;
  const { ca, change } = await ensureWebhookTls(core, host);
  const changes: WebhookChange[] = [];
  const note = (c: WebhookChange) => {
    changes.push(c);
    opts.onChange?.(c);
  };
  note(change);
  const api = k8s.KubernetesObjectApi.makeApiClient(kc);
  for (const o of webhookConfigurations(ca, opts.webhookUrl)) {
    let before: k8s.KubernetesObject | undefined;
    try {
      before = await api.read({
        apiVersion: o.apiVersion,
        kind: o.kind,
        metadata: { name: o.metadata.name },
      });
    } catch (e) {
      if ((e as { code?: number }).code !== 404) throw e;
    }
    const after: k8s.KubernetesObject = before
      ? await api.replace({
        ...o,
        metadata: { ...o.metadata, resourceVersion: before.metadata?.resourceVersion },
      })
      : await api.create(o);
    const action = !before
      ? "created"
      : before.metadata?.resourceVersion === after.metadata?.resourceVersion
      ? "unchanged"
      : "configured";
    note({ kind: o.kind, name: o.metadata.name, action });
  }
  return changes;
}

/** Removes the registrations and the certificate deploy made. */
export async function undeployWebhook(kc: k8s.KubeConfig): Promise<WebhookChange[]> {
  const api = k8s.KubernetesObjectApi.makeApiClient(kc);
  const changes: WebhookChange[] = [];
  const objects = [
    ...webhookConfigurations("").map((o) => ({
      apiVersion: o.apiVersion,
      kind: o.kind,
      metadata: { name: o.metadata.name },
    })),
    { apiVersion: "v1", kind: "Secret", metadata: { name: WEBHOOK_TLS_SECRET, namespace: NS } },
  ];
  for (const o of objects) {
    try {
      const cur = await api.read(o);
      if (o.kind === "Secret" && cur.metadata?.labels?.[MANAGED_LABEL] !== MANAGED_BY) continue;
      await api.delete(o);
      changes.push({ kind: o.kind, name: o.metadata.name, action: "deleted" });
    } catch (e) {
      if ((e as { code?: number }).code !== 404) throw e;
      changes.push({ kind: o.kind, name: o.metadata.name, action: "absent" });
    }
  }
  return changes;
}
