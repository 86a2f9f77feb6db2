/**
 * The node runtime's own serving certificate (`tls.request`): at start the runtime makes a fresh key,
 * asks for a certificate through the Kubernetes CSR API (signer `bpfd.io/node-serving`, common name
 * `system:bpfd:node:<node>`) with its own credentials, waits until the controller has approved and signed
 * it (controller/signer.ts: for this node's addresses only), and writes key and certificate to the
 * configured files. No two nodes share a key; the key never leaves the node.
 *
 * @module
 */
import { keyAndRequest } from "../../lib/pki.ts";
import type { Logger } from "../../lib/log.ts";
import { NODE_SIGNER_NAME, nodeCommonName } from "../../model/names.ts";
import type { RuntimeConfig } from "../config.ts";
import { KubeFetch } from "../kube_fetch.ts";

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
  /** The runtime's credentials (default: $KUBECONFIG, ~/.kube/config, in-cluster). */
  kubeconfig?: string;
  /** How long to wait for the signed certificate (default 5 minutes). */
  timeoutMs?: number;
}

/** What this needs of a CertificateSigningRequest. */
interface Csr {
  metadata?: { name?: string };
  status?: { certificate?: string; conditions?: Array<{ type: string; message?: string }> };
}

const CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

/** Makes a key, has the cluster sign a certificate for it, writes both; resolves when they are there. */
export async function requestServingCertificate(opts: ServingCertOptions, log: Logger): Promise<void> {
  const kube = await KubeFetch.load(opts.kubeconfig);
  try {
    const { key, csr } = await keyAndRequest(nodeCommonName(opts.nodeName));
    const made = await kube.request<Csr>("POST", CSRS, {
      apiVersion: "certificates.k8s.io/v1",
      kind: "CertificateSigningRequest",
      metadata: { generateName: `bpfd-node-${opts.nodeName}-` },
      spec: {
        request: btoa(csr),
        signerName: NODE_SIGNER_NAME,
        usages: ["digital signature", "key encipherment", "server auth"],
      },
    });
    const name = made.metadata!.name!;
    log.info("serving certificate requested", { csr: name, signer: NODE_SIGNER_NAME });
    const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
    while (true) {
      const cur = await kube.request<Csr>("GET", `${CSRS}/${name}`);
      const refused = cur.status?.conditions?.find((c) => c.type === "Denied" || c.type === "Failed");
      if (refused) {
        throw new Error(
          `certificate request ${name} ${refused.type.toLowerCase()}: ${refused.message ?? ""}`,
        );
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
  } finally {
    kube.close();
  }
}
