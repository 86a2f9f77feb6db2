/**
 * The node runtimes' TLS serving certificate for `deno task deploy`: the Secret `bpfd/bpfd-node-tls`
 * (`tls.crt`, `tls.key`, `ca.crt`) the DaemonSet serves with and the controller trusts. A Secret someone
 * else made (no label `bpfd.io/managed-by: bpfd-deploy`) is used as it is. Otherwise deploy makes a CA and
 * a certificate whose subjectAltNames are every Node's addresses (InternalIP, ExternalIP, Hostname,
 * InternalDNS) plus `--node-san` extras, and makes them again when a node address is not covered or the
 * certificate expires within 30 days. The pod templates carry a hash of the certificate, so a new one
 * rolls the runtimes and the controller.
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { NAMESPACE, NODE_TLS_SECRET } from "../manifests/manifests.ts";

export const MANAGED_LABEL = "bpfd.io/managed-by";
export const MANAGED_BY = "bpfd-deploy";
const RENEW_BEFORE_MS = 30 * 86400_000;

async function openssl(args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command("openssl", {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  if (out.code !== 0) throw new Error(`openssl ${args[0]}: ${dec.decode(out.stderr).trim()}`);
  return dec.decode(out.stdout);
}

/** Every address of every Node: IPs and DNS names. */
export async function nodeAddresses(kc: k8s.KubeConfig): Promise<{ ips: string[]; dns: string[] }> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const nodes = await core.listNode();
  const ips = new Set<string>(), dns = new Set<string>();
  for (const n of nodes.items) {
    for (const a of n.status?.addresses ?? []) {
      if (a.type === "InternalIP" || a.type === "ExternalIP") ips.add(a.address);
      else if (a.type === "Hostname" || a.type === "InternalDNS" || a.type === "ExternalDNS") {
        dns.add(a.address);
      }
    }
  }
  return { ips: [...ips].sort(), dns: [...dns].sort() };
}

/** The subjectAltNames of a PEM certificate and its expiry. */
export async function certificateFacts(pem: string): Promise<{ sans: Set<string>; notAfter: number }> {
  const text = await openssl(["x509", "-noout", "-enddate", "-ext", "subjectAltName"], pem);
  const sans = new Set<string>();
  for (const m of text.matchAll(/(DNS|IP Address):([^,\s]+)/g)) sans.add(m[2]);
  const end = text.match(/notAfter=(.+)/)?.[1];
  return { sans, notAfter: end ? Date.parse(end) : 0 };
}

const b64 = (s: string) => btoa(s);
const unb64 = (s: string | undefined) => s ? atob(s) : "";

async function hashOf(...parts: string[]): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(parts.join("\n")));
  return Array.from(new Uint8Array(d).slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A CA and a serving certificate for `ips` and `dns`, valid `days`. */
export async function issueNodeCertificate(
  ips: string[],
  dns: string[],
  days = 365,
): Promise<{ ca: string; cert: string; key: string }> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-tls-" });
  try {
    await openssl(["genrsa", "-out", `${dir}/ca.key`, "2048"]);
    await openssl([
      "req",
      "-x509",
      "-new",
      "-key",
      `${dir}/ca.key`,
      "-subj",
      "/CN=bpfd-node-ca",
      "-days",
      String(days + 30),
      "-out",
      `${dir}/ca.crt`,
    ]);
    await openssl(["genrsa", "-out", `${dir}/tls.key`, "2048"]);
    await openssl([
      "req",
      "-new",
      "-key",
      `${dir}/tls.key`,
      "-subj",
      "/CN=bpfd-node",
      "-out",
      `${dir}/tls.csr`,
    ]);
    const sans = [...ips.map((i) => `IP:${i}`), ...dns.map((d) => `DNS:${d}`)].join(",");
    await Deno.writeTextFile(
      `${dir}/tls.ext`,
      `subjectAltName=${sans}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n`,
    );
    await openssl([
      "x509",
      "-req",
      "-in",
      `${dir}/tls.csr`,
      "-CA",
      `${dir}/ca.crt`,
      "-CAkey",
      `${dir}/ca.key`,
      "-CAcreateserial",
      "-days",
      String(days),
      "-extfile",
      `${dir}/tls.ext`,
      "-out",
      `${dir}/tls.crt`,
    ]);
    return {
      ca: await Deno.readTextFile(`${dir}/ca.crt`),
      cert: await Deno.readTextFile(`${dir}/tls.crt`),
      key: await Deno.readTextFile(`${dir}/tls.key`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

export interface NodeTlsResult {
  action: "created" | "configured" | "unchanged";
  /** A hash of the CA and certificate, for the pod templates. */
  hash: string;
  /** Why it was (re)issued, or that a user's Secret is used. */
  note?: string;
}

/** Makes sure the Secret exists and covers every node; see the module doc. */
export async function ensureNodeTls(
  kc: k8s.KubeConfig,
  opts: { extraSans?: string[]; now?: number } = {},
): Promise<NodeTlsResult> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  let cur: k8s.V1Secret | undefined;
  try {
    cur = await core.readNamespacedSecret({ name: NODE_TLS_SECRET, namespace: NAMESPACE });
  } catch (e) {
    if ((e as { code?: number }).code !== 404) throw e;
  }
  if (cur && cur.metadata?.labels?.[MANAGED_LABEL] !== MANAGED_BY) {
    const d = cur.data ?? {};
    return {
      action: "unchanged",
      hash: await hashOf(unb64(d["ca.crt"]), unb64(d["tls.crt"])),
      note: "user's Secret",
    };
  }
  const { ips, dns } = await nodeAddresses(kc);
  for (const s of opts.extraSans ?? []) (/^[0-9.]+$|:/.test(s) ? ips : dns).push(s);
  const wantIps = [...new Set(["127.0.0.1", ...ips])].sort();
  const wantDns = [...new Set(["localhost", ...dns])].sort();
  let why = "no Secret";
  if (cur) {
    const d = cur.data ?? {};
    const cert = unb64(d["tls.crt"]);
    const facts = await certificateFacts(cert).catch(() => undefined);
    const missing = facts ? [...wantIps, ...wantDns].filter((s) => !facts.sans.has(s)) : ["(unreadable)"];
    if (facts && !missing.length && facts.notAfter - (opts.now ?? Date.now()) > RENEW_BEFORE_MS) {
      return { action: "unchanged", hash: await hashOf(unb64(d["ca.crt"]), cert) };
    }
    why = missing.length ? `not covered: ${missing.join(", ")}` : "expires within 30 days";
  }
  const made = await issueNodeCertificate(wantIps, wantDns);
  const body: k8s.V1Secret = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: NODE_TLS_SECRET,
      namespace: NAMESPACE,
      labels: { "app.kubernetes.io/part-of": "bpfd", [MANAGED_LABEL]: MANAGED_BY },
      ...(cur ? { resourceVersion: cur.metadata?.resourceVersion } : {}),
    },
    type: "Opaque",
    data: { "ca.crt": b64(made.ca), "tls.crt": b64(made.cert), "tls.key": b64(made.key) },
  };
  if (cur) await core.replaceNamespacedSecret({ name: NODE_TLS_SECRET, namespace: NAMESPACE, body });
  else await core.createNamespacedSecret({ namespace: NAMESPACE, body });
  return { action: cur ? "configured" : "created", hash: await hashOf(made.ca, made.cert), note: why };
}

/** Deletes the Secret if deploy made it. */
export async function removeNodeTls(kc: k8s.KubeConfig): Promise<"deleted" | "absent" | "kept"> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  try {
    const cur = await core.readNamespacedSecret({ name: NODE_TLS_SECRET, namespace: NAMESPACE });
    if (cur.metadata?.labels?.[MANAGED_LABEL] !== MANAGED_BY) return "kept";
    await core.deleteNamespacedSecret({ name: NODE_TLS_SECRET, namespace: NAMESPACE });
    return "deleted";
  } catch (e) {
    if ((e as { code?: number }).code === 404) return "absent";
    throw e;
  }
}
