/**
 * BpfPolicy in the controller process: with `--policy` (or `--webhook-listen`) it watches the cluster's
 * BpfPolicy objects, hands the controller the effective policy (controller/policy_gate.ts), resyncs every
 * config when a policy changes, and serves the admission webhooks (controller/webhook.ts) over TLS.
 *
 * @example
 * ```ts
 * const admission = await Admission.start({ listen: "0.0.0.0:9443", certFile, keyFile }, kc, log);
 * ```
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type { Logger } from "../lib/log.ts";
import type { EffectivePolicy } from "../policy/evaluate.ts";
import { PolicyWatch } from "../runtime/policy.ts";
import type { Controller } from "./controller.ts";
import { clusterSubjects, serveWebhook, webhookApp } from "./webhook.ts";

/** What the command line asks for. */
export interface AdmissionOptions {
  /** Enforce BpfPolicy even without serving the webhooks. */
  enforce?: boolean;
  /** host:port of the webhooks (TLS); none: no webhooks. */
  listen?: string;
  certFile?: string;
  keyFile?: string;
  /** The controller's kubeconfig file (default: in-cluster, $KUBECONFIG, ~/.kube/config). */
  kubeconfig?: string;
}

/** The policy watch and the webhook server of one controller process. */
export class Admission {
  #abort = new AbortController();

  private constructor(
    readonly watch: PolicyWatch,
    readonly opts: AdmissionOptions,
    readonly kc: k8s.KubeConfig,
  ) {}

  /** Starts watching BpfPolicy when asked to (undefined otherwise). */
  static async start(
    opts: AdmissionOptions,
    kc: k8s.KubeConfig,
    log: Logger,
  ): Promise<Admission | undefined> {
    if (!opts.enforce && !opts.listen) return undefined;
    const watch = new PolicyWatch(log.with({ component: "policy" }));
    await watch.start(opts.kubeconfig);
    return new Admission(watch, opts, kc);
  }

  /** The effective policy now. */
  readonly policy = (): EffectivePolicy => this.watch.current();

  /** Resyncs `c` on every policy change and serves the webhooks with its Event recorder and log. */
  async serve(c: Controller): Promise<void> {
    this.watch.onChange = () => c.reconciler.resyncAll();
    if (!this.opts.listen) return;
    const app = webhookApp({
      policy: this.policy,
      log: c.log.with({ component: "webhook" }),
      event: (e) => c.store.event(e),
      knownSubjects: () => clusterSubjects(this.kc),
    });
    await serveWebhook(app, {
      listen: this.opts.listen,
      certFile: this.opts.certFile ?? "/etc/bpfd/webhook/tls.crt",
      keyFile: this.opts.keyFile ?? "/etc/bpfd/webhook/tls.key",
      signal: this.#abort.signal,
    });
    c.log.info("admission webhook serving", { listen: this.opts.listen });
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.watch.stop();
  }
}
