/**
 * The signer `bpfd.io/node-serving`: approves and signs node runtimes' certificate requests (CSR API),
 * each for one node only. A request is signed when it comes from the node runtimes' ServiceAccount with a
 * token bound to a pod (`authentication.kubernetes.io/pod-name`/`pod-uid` in the request's `extra`), that
 * pod exists with that uid and runs on node N, and the request names `system:bpfd:node:N`; the certificate
 * is for N's addresses (its Node's status) and name only, whatever the request asks. Anything else is
 * denied with the reason. So a node holds a key for itself alone, and cannot obtain one for another node.
 *
 * @example
 * ```ts
 * const signer = new NodeSigner(kc, { ca, namespace: "bpfd", log });
 * await signer.signPending();
 * ```
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { type Ca, requestSubject, signServing } from "../lib/pki.ts";
import type { Logger } from "../lib/log.ts";
import { NODE_SERVICE_ACCOUNT, NODE_SIGNER_NAME, nodeCommonName } from "../model/names.ts";

const POD_NAME = "authentication.kubernetes.io/pod-name";
const POD_UID = "authentication.kubernetes.io/pod-uid";
/** How long a node runtime's certificate is valid. */
const CERT_DAYS = 365;

/** Options of {@link NodeSigner}. */
export interface NodeSignerOptions {
  /** The node CA (bpfd-node-ca). */
  ca: Ca;
  /** The namespace of the node runtimes' ServiceAccount and pods. */
  namespace: string;
  log: Logger;
  /** How often pending requests are looked for (default 2 s). */
  periodMs?: number;
}

/** The verdict on one request: the node and its subjectAltNames, or why not. */
export type SignerVerdict = { node: string; ips: string[]; dns: string[] } | { denied: string };

/** Approves and signs (or denies) the pending requests for bpfd's signer, periodically. */
export class NodeSigner {
  #certs: k8s.CertificatesV1Api;
  #core: k8s.CoreV1Api;
  #timer?: ReturnType<typeof setInterval>;
  #running?: Promise<void>;

  constructor(kc: k8s.KubeConfig, readonly opts: NodeSignerOptions) {
    this.#certs = kc.makeApiClient(k8s.CertificatesV1Api);
    this.#core = kc.makeApiClient(k8s.CoreV1Api);
  }

  /** Looks for pending requests now and every `periodMs`. */
  start(): void {
    const tick = () => {
      this.#running ??= this.signPending()
        .catch((err) => this.opts.log.warn("signing node certificates", { error: String(err) }))
        .finally(() => this.#running = undefined);
    };
    tick();
    this.#timer = setInterval(tick, this.opts.periodMs ?? 2000);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  /** Decides every pending request for bpfd's signer once. */
  async signPending(): Promise<void> {
    const list = await this.#certs.listCertificateSigningRequest({
      fieldSelector: `spec.signerName=${NODE_SIGNER_NAME}`,
    });
    for (const csr of list.items) {
      const decided = csr.status?.conditions?.some((c) => c.type === "Denied" || c.type === "Failed");
      if (csr.status?.certificate || decided) continue;
      try {
        await this.#decide(csr);
      } catch (err) {
        if ((err as { code?: number }).code === 409) continue; // another replica decided it meanwhile
        throw err;
      }
    }
  }

  async #decide(csr: k8s.V1CertificateSigningRequest): Promise<void> {
    const name = csr.metadata!.name!;
    const verdict = await this.verdict(csr);
    const condition = (type: string, reason: string, message: string) => ({
      type,
      status: "True",
      reason,
      message,
      lastUpdateTime: new Date(),
    });
    if ("denied" in verdict) {
      this.opts.log.warn("node certificate request denied", { csr: name, reason: verdict.denied });
      await this.#certs.replaceCertificateSigningRequestApproval({
        name,
        body: { ...csr, status: { conditions: [condition("Denied", "BpfdNodeUnverified", verdict.denied)] } },
      });
      return;
    }
    // Approved earlier (by a replica that stopped before signing): sign now.
    const approved = csr.status?.conditions?.some((c) => c.type === "Approved")
      ? csr
      : await this.#certs.replaceCertificateSigningRequestApproval({
        name,
        body: {
          ...csr,
          status: {
            conditions: [condition("Approved", "BpfdNodeVerified", `a bpfd node runtime on ${verdict.node}`)],
          },
        },
      });
    const cert = await signServing(atob(csr.spec.request), this.opts.ca, verdict, CERT_DAYS);
    await this.#certs.replaceCertificateSigningRequestStatus({
      name,
      body: { ...approved, status: { ...approved.status, certificate: btoa(cert) } },
    });
    this.opts.log.info("node certificate signed", {
      csr: name,
      node: verdict.node,
      sans: [...verdict.ips, ...verdict.dns],
    });
  }

  /** Whether `csr` is a node runtime's request for its own node, and for which addresses. */
  async verdict(csr: k8s.V1CertificateSigningRequest): Promise<SignerVerdict> {
    const spec = csr.spec;
    const account = `system:serviceaccount:${this.opts.namespace}:${NODE_SERVICE_ACCOUNT}`;
    if (spec.username !== account) return { denied: `requested by ${spec.username}, not ${account}` };
    const podName = spec.extra?.[POD_NAME]?.[0], podUid = spec.extra?.[POD_UID]?.[0];
    if (!podName || !podUid) return { denied: "the requester's token is not bound to a pod" };
    let pod: k8s.V1Pod;
    try {
      pod = await this.#core.readNamespacedPod({ name: podName, namespace: this.opts.namespace });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return { denied: `pod ${podName} does not exist` };
      throw err;
    }
    if (pod.metadata?.uid !== podUid) {
      return { denied: `pod ${podName} is not the one the token is bound to` };
    }
    const node = pod.spec?.nodeName;
    if (!node) return { denied: `pod ${podName} runs on no node` };
    let subject: string;
    try {
      subject = await requestSubject(atob(spec.request));
    } catch (err) {
      return { denied: `the request is not valid: ${(err as Error).message}` };
    }
    if (subject !== nodeCommonName(node)) {
      return { denied: `the request names ${subject}, the pod runs on ${node} (${nodeCommonName(node)})` };
    }
    const ips = new Set<string>(), dns = new Set<string>([node]);
    const status = (await this.#core.readNode({ name: node })).status;
    for (const a of status?.addresses ?? []) {
      if (a.type === "InternalIP" || a.type === "ExternalIP") ips.add(a.address);
      else if (a.type === "Hostname" || a.type === "InternalDNS" || a.type === "ExternalDNS") {
        dns.add(a.address);
      }
    }
    return { node, ips: [...ips].sort(), dns: [...dns].sort() };
  }
}
