/**
 * The node runtimes' certificate authority for `deno task deploy`: the Secret `bpfd/bpfd-node-ca`
 * (`ca.crt`, `ca.key`). Only the controller mounts it: it signs each node runtime's own serving
 * certificate (controller/signer.ts, through the CSR API) and trusts the CA when it calls nodes. A Secret
 * someone else made (no label `bpfd.io/managed-by: bpfd-deploy`) is used as it is; otherwise deploy makes
 * a CA valid 10 years, and a new one when it is unreadable or expires within 30 days. The pod templates
 * carry a hash of the CA certificate, so a new CA rolls the controller and the runtimes (which then ask
 * for certificates from the new CA).
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { NAMESPACE, NODE_CA_SECRET } from "../manifests/manifests.ts";
import { certificateFacts, issueCa, keyAndRequest, signServing } from "../lib/pki.ts";

export const MANAGED_LABEL = "bpfd.io/managed-by";
export const MANAGED_BY = "bpfd-deploy";
const RENEW_BEFORE_MS = 30 * 86400_000;
const CA_DAYS = 3650;

const unb64 = (s: string | undefined) => s ? atob(s) : "";

async function hashOf(...parts: string[]): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(parts.join("\n")));
  return Array.from(new Uint8Array(d).slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A CA and a serving certificate for `ips` and `dns`, valid `days` (for tests and hand-made setups). */
export async function issueNodeCertificate(
  ips: string[],
  dns: string[],
  days = 365,
): Promise<{ ca: string; cert: string; key: string }> {
  const ca = await issueCa("bpfd-node-ca", days + 30);
  const { key, csr } = await keyAndRequest("bpfd-node");
  return { ca: ca.cert, cert: await signServing(csr, ca, { ips, dns }, days), key };
}

export interface NodeCaResult {
  action: "created" | "configured" | "unchanged";
  /** A hash of the CA certificate, for the pod templates. */
  hash: string;
  /** Why it was (re)made, or that a user's Secret is used. */
  note?: string;
}

/** Makes sure the CA Secret exists and is good for 30 more days; see the module doc. */
export async function ensureNodeCa(kc: k8s.KubeConfig, opts: { now?: number } = {}): Promise<NodeCaResult> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  let cur: k8s.V1Secret | undefined;
  try {
    cur = await core.readNamespacedSecret({ name: NODE_CA_SECRET, namespace: NAMESPACE });
  } catch (e) {
    if ((e as { code?: number }).code !== 404) throw e;
  }
  const caOf = (s: k8s.V1Secret) => unb64(s.data?.["ca.crt"]);
  if (cur && cur.metadata?.labels?.[MANAGED_LABEL] !== MANAGED_BY) {
    return { action: "unchanged", hash: await hashOf(caOf(cur)), note: "user's Secret" };
  }
  let why = "no Secret";
  if (cur) {
    const facts = await certificateFacts(caOf(cur)).catch(() => undefined);
    if (facts && facts.notAfter - (opts.now ?? Date.now()) > RENEW_BEFORE_MS) {
      return { action: "unchanged", hash: await hashOf(caOf(cur)) };
    }
    why = facts ? "expires within 30 days" : "unreadable";
  }
  const ca = await issueCa("bpfd-node-ca", CA_DAYS);
  const body: k8s.V1Secret = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: NODE_CA_SECRET,
      namespace: NAMESPACE,
      labels: { "app.kubernetes.io/part-of": "bpfd", [MANAGED_LABEL]: MANAGED_BY },
      ...(cur ? { resourceVersion: cur.metadata?.resourceVersion } : {}),
    },
    type: "Opaque",
    data: { "ca.crt": btoa(ca.cert), "ca.key": btoa(ca.key) },
  };
  if (cur) await core.replaceNamespacedSecret({ name: NODE_CA_SECRET, namespace: NAMESPACE, body });
  else await core.createNamespacedSecret({ namespace: NAMESPACE, body });
  return { action: cur ? "configured" : "created", hash: await hashOf(ca.cert), note: why };
}

/** Deletes the Secret if deploy made it. */
export async function removeNodeCa(kc: k8s.KubeConfig): Promise<"deleted" | "absent" | "kept"> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  try {
    const cur = await core.readNamespacedSecret({ name: NODE_CA_SECRET, namespace: NAMESPACE });
    if (cur.metadata?.labels?.[MANAGED_LABEL] !== MANAGED_BY) return "kept";
    await core.deleteNamespacedSecret({ name: NODE_CA_SECRET, namespace: NAMESPACE });
    return "deleted";
  } catch (e) {
    if ((e as { code?: number }).code === 404) return "absent";
    throw e;
  }
}
