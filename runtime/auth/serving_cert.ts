/**
 * The node runtime's own serving certificate (`tls.request`): at start the runtime makes a fresh key,
 * asks for a certificate through the Kubernetes CSR API (signer `bpfd.io/node-serving`, common name
 * `system:bpfd:node:<node>`) with its own credentials, waits until the controller has approved and signed
 * it (controller/signer.ts: for this node's addresses only), and writes key and certificate to the
 * configured files. No two nodes share a key; the key never leaves the node.
 *
 * @module
 */
import { kubeClient } from "../../lib/kube_client.ts";
import { keyAndRequest } from "../../lib/pki.ts";
import type { Logger } from "../../lib/log.ts";
import { NODE_SIGNER_NAME, nodeCommonName } from "../../model/names.ts";
import type { RuntimeConfig } from "../config.ts";

/** This node's name: the configuration's, $NODE_NAME or the hostname. */
export function nodeNameOf(config: RuntimeConfig): string {
  return config.auth?.nodeName ?? Deno.env.get("NODE_NAME") ?? Deno.hostname();
}

/** Requests the serving certificate when the configuration asks for it (`tls.request`). */
export async function ensureServingCertificate(config: RuntimeConfig, log: Logger): Promise<void> {
  if (!config.tls?.request) return;
  await requestServingCertificate({
    nodeName: nodeNameOf(config),
    certFile: config.tls.certFile,
    keyFile: config.tls.keyFile,
    kubeconfig: config.auth?.kubeconfig,
  }, log);
}

/** Where the key and certificate go, and whose they are. */
export interface ServingCertOptions {
  nodeName: string;
  certFile: string;
  keyFile: string;
  /** The runtime's credentials (default: $KUBECONFIG, in-cluster, ~/.kube/config). */
  kubeconfig?: string;
  /** How long to wait for the signed certificate (default 5 minutes). */
  timeoutMs?: number;
}

/** Makes a key, has the cluster sign a certificate for it, writes both; resolves when they are there. */
export async function requestServingCertificate(opts: ServingCertOptions, log: Logger): Promise<void> {
  const k8s = await kubeClient();
  const kc = new k8s.KubeConfig();
  if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
  else kc.loadFromDefault();
  const api = kc.makeApiClient(k8s.CertificatesV1Api);
  const { key, csr } = await keyAndRequest(nodeCommonName(opts.nodeName));
  const made = await api.createCertificateSigningRequest({
    body: {
      metadata: { generateName: `bpfd-node-${opts.nodeName}-` },
      spec: {
        request: btoa(csr),
        signerName: NODE_SIGNER_NAME,
        usages: ["digital signature", "key encipherment", "server auth"],
      },
    },
  });
  const name = made.metadata!.name!;
  log.info("serving certificate requested", { csr: name, signer: NODE_SIGNER_NAME });
  const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
  while (true) {
    const cur = await api.readCertificateSigningRequest({ name });
    const refused = cur.status?.conditions?.find((c) => c.type === "Denied" || c.type === "Failed");
    if (refused) {
      throw new Error(`certificate request ${name} ${refused.type.toLowerCase()}: ${refused.message ?? ""}`);
    }
    if (cur.status?.certificate) {
      await Deno.writeTextFile(opts.keyFile, key, { mode: 0o600 });
      await Deno.chmod(opts.keyFile, 0o600);
      await Deno.writeTextFile(opts.certFile, atob(cur.status.certificate));
      log.info("serving certificate issued", { csr: name });
      return;
    }
    if (Date.now() > deadline) throw new Error(`certificate request ${name} not signed in time`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
