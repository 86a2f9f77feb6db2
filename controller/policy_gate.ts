/**
 * The controller's side of BpfPolicy: calls to nodes carry the config's requester; a config the policy
 * forbids is not loaded on a node that lacks it (what is loaded stays); the verdict is each config's
 * `PolicyAllowed` condition, and each new refusal an Event and a log line.
 *
 * @example
 * ```ts
 * const gate = new PolicyGate(nodes, { policy, store: () => store, log: () => log, event });
 * ```
 * @module
 */
import type { BpfProgramConfig, Condition } from "../crds/schema.ts";
import type { ReconcileInput, ReconcileOutput } from "../crds/reconcile.ts";
import type { Logger } from "../lib/log.ts";
import type { EffectivePolicy } from "../policy/evaluate.ts";
import { configRequest, requesterOf } from "../policy/config.ts";
import { type NodeCaller, NodeError, type NodeInfo } from "./node_client.ts";
import type { EventSpec, Store } from "./reconciler.ts";

/** The condition type of a config's policy verdict. */
export const POLICY_ALLOWED = "PolicyAllowed";

type Verdict = { allowed: true; rule: string } | {
  allowed: false;
  message: string;
  rule?: string;
  field: string;
};

/** A config the policy forbids, refused before any node is asked (status 0: no node answered). */
export class PolicyDenied extends NodeError {
  constructor(message: string) {
    super(0, message, "policy_denied");
    this.name = "PolicyDenied";
  }
}

/** Checks configs against the policy and passes their requesters to the nodes. */
export class PolicyGate implements NodeCaller {
  #reported = new Map<string, string>();

  constructor(
    readonly inner: NodeCaller,
    readonly opts: {
      policy: () => EffectivePolicy;
      store: () => Store;
      log: () => Logger;
      event: (e: EventSpec) => Promise<void>;
    },
  ) {}

  /** The policy's verdict on a config for its requester. */
  verdict(cfg: BpfProgramConfig): Verdict {
    const requester = requesterOf(cfg.metadata.annotations);
    if (!requester) {
      return {
        allowed: false,
        field: "metadata.annotations[bpfd.io/requested-by]",
        message: "no bpfd.io/requested-by: the config was not admitted by bpfd's webhook (apply it again)",
      };
    }
    return this.opts.policy().decide(configRequest(cfg.spec), requester);
  }

  /** The `PolicyAllowed` condition of a config. */
  condition(cfg: BpfProgramConfig): Omit<Condition, "lastTransitionTime"> {
    const v = this.verdict(cfg);
    return v.allowed
      ? {
        type: POLICY_ALLOWED,
        status: "True",
        reason: "PolicyAllowed",
        message: `allowed by BpfPolicy rule ${v.rule}`,
      }
      : { type: POLICY_ALLOWED, status: "False", reason: "PolicyDenied", message: v.message };
  }

  async reconcile(node: NodeInfo, input: ReconcileInput): Promise<ReconcileOutput> {
    const cfg = input.config ? this.opts.store().config(input.config) : undefined;
    if (!input.spec || !cfg) return await this.inner.reconcile(node, input);
    const requester = requesterOf(cfg.metadata.annotations);
    const v = this.verdict(cfg);
    const loaded = Object.keys(this.opts.store().program(input.name)?.spec.programs ?? {}).length > 0;
    if (!v.allowed) this.#report(cfg, v);
    else this.#reported.delete(cfg.metadata.name);
    if (!v.allowed && !loaded) throw new PolicyDenied(`not loaded: ${v.message}`);
    return await this.inner.reconcile(node, { ...input, ...(requester ? { requester } : {}) });
  }

  #report(cfg: BpfProgramConfig, v: Extract<Verdict, { allowed: false }>) {
    const name = cfg.metadata.name;
    if (this.#reported.get(name) === v.message) return;
    this.#reported.set(name, v.message);
    const requester = requesterOf(cfg.metadata.annotations);
    this.opts.log().warn("policy refused", {
      config: name,
      user: requester?.user,
      groups: requester?.groups,
      rule: v.rule,
      field: v.field,
      reason: v.message,
    });
    this.opts.event({
      kind: "BpfProgramConfig",
      name,
      uid: cfg.metadata.uid,
      type: "Warning",
      reason: "PolicyDenied",
      message: v.message,
    }).catch(() => {/* best effort */});
  }
}
