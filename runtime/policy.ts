/**
 * Where a node's BpfPolicy comes from: the cluster (listed and watched with the runtime's credentials,
 * runtime/kube_watch.ts) or a file of BpfPolicy documents (re-read when it changes). Functions see a `PolicyGate`; the controller
 * uses `PolicyWatch` too.
 *
 * @example
 * ```ts
 * node.policy = await policyGateFrom(config, node.log); // undefined without `policy` in the config
 * ```
 * @module
 */
import type { PolicyGate } from "../functions/mod.ts";
import type { Logger } from "../lib/log.ts";
import { BpfPolicy } from "../model/policy.ts";
import { compilePolicy, type EffectivePolicy } from "../policy/evaluate.ts";
import type { RuntimeConfig } from "./config.ts";
import { KubeFetch } from "./kube_fetch.ts";
import { ListWatch } from "./kube_watch.ts";

/** The valid BpfPolicy documents among `docs`, and what was wrong with the others. */
export function parsePolicies(docs: readonly unknown[]): { policies: BpfPolicy[]; problems: string[] } {
  const policies: BpfPolicy[] = [];
  const problems: string[] = [];
  for (const doc of docs) {
    if (!doc || (doc as { kind?: string }).kind !== "BpfPolicy") continue;
    const r = BpfPolicy.safeParse(doc);
    if (r.success) policies.push(r.data);
    else {
      const name = (doc as { metadata?: { name?: string } }).metadata?.name ?? "(unnamed)";
      problems.push(`${name}: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    }
  }
  return { policies, problems };
}

/** BpfPolicy objects of a cluster, listed then watched; `current()` is their effective policy. */
export class PolicyWatch {
  #policy = compilePolicy([]);
  #stop?: () => Promise<void>;
  /** Called after every change (tests, the controller's resync). */
  onChange?: (p: EffectivePolicy) => void;

  constructor(readonly log: Logger) {}

  current(): EffectivePolicy {
    return this.#policy;
  }

  /** Starts watching; resolves once a list succeeded (until then nothing new passes: the empty policy). */
  async start(kubeconfig?: string): Promise<void> {
    const kube = await KubeFetch.load(kubeconfig);
    const policies = new ListWatch(kube, "/apis/bpfd.io/v1alpha1/bpfpolicies", {
      onChange: () => rebuild(),
      onError: (err) =>
        this.log.warn("BpfPolicy watch failed; restarting", {
          error: String((err as Error)?.message ?? err),
        }),
    });
    const rebuild = () => {
      const { policies: valid, problems } = parsePolicies(policies.list());
      if (problems.length) this.log.warn("BpfPolicy objects ignored", { problems });
      this.#policy = compilePolicy(valid);
      this.log.info("policy", { policies: valid.map((p) => p.metadata.name), rules: this.#ruleCount() });
      this.onChange?.(this.#policy);
    };
    // Stoppable while the first list is still being retried (a node runtime goes on after 10 s).
    this.#stop = async () => {
      await policies.stop();
      kube.close();
    };
    await policies.start();
    rebuild();
  }

  #ruleCount(): number {
    return this.#policy.allows.length + this.#policy.denies.length;
  }

  async stop(): Promise<void> {
    await this.#stop?.();
  }
}

/** A policy file (YAML or JSON, one or more BpfPolicy documents), read again when its mtime changes. */
export class PolicyFile {
  #policy: EffectivePolicy;
  #mtime = 0;
  #checked = 0;

  private constructor(readonly path: string, readonly log: Logger) {
    this.#policy = compilePolicy([]);
  }

  /** Reads `path`; a file that is missing or holds an invalid policy fails the start. */
  static async open(path: string, log: Logger): Promise<PolicyFile> {
    const f = new PolicyFile(path, log);
    await f.#read(true);
    return f;
  }

  async #read(strict: boolean): Promise<void> {
    const { loadAll } = await import("js-yaml");
    const stat = await Deno.stat(this.path);
    const { policies, problems } = parsePolicies(loadAll(await Deno.readTextFile(this.path)));
    if (problems.length && strict) throw new Error(`${this.path}: ${problems.join("; ")}`);
    if (problems.length) {
      this.log.warn("policy file has invalid BpfPolicy documents (kept the last good policy)", { problems });
    } else this.#policy = compilePolicy(policies);
    this.#mtime = stat.mtime?.getTime() ?? 0;
  }

  current(): EffectivePolicy {
    // At most one stat a second; a changed file is read in the background.
    const now = Date.now();
    if (now - this.#checked > 1000) {
      this.#checked = now;
      Deno.stat(this.path).then((s) =>
        (s.mtime?.getTime() ?? 0) !== this.#mtime ? this.#read(false) : undefined
      )
        .catch((err) =>
          this.log.warn("policy file unreadable (kept the last good policy)", { error: String(err) })
        );
    }
    return this.#policy;
  }
}

/** How long a node runtime's start waits for the first BpfPolicy list. */
const FIRST_LIST_WAIT_MS = 10_000;

/** The node's policy gate for its configuration (undefined: no policy, every call allowed); `stop` ends a watch. */
export async function policyGateFrom(
  config: RuntimeConfig,
  log: Logger,
): Promise<(PolicyGate & { stop(): Promise<void> }) | undefined> {
  const p = config.policy;
  if (!p) return undefined;
  const trusted = new Set(p.controllers);
  let source: { current(): EffectivePolicy; stop?(): Promise<void> };
  if (p.source === "file") source = await PolicyFile.open(p.file!, log);
  else {
    const watch = new PolicyWatch(log.with({ component: "policy" }));
    // The node serves without the API server too (the programs it runs, local callers): after a while it
    // goes on with the empty policy, under which nothing new passes, until the list is in.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const listed = await Promise.race([
      watch.start(p.kubeconfig ?? config.auth?.kubeconfig).then(() => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), FIRST_LIST_WAIT_MS)),
    ]).finally(() => clearTimeout(timer));
    if (!listed) {
      log.warn("BpfPolicy not listed yet (API server unreachable): nothing new passes until it is");
    }
    source = watch;
  }
  return {
    current: () => source.current(),
    trusts: (user) => trusted.has(user),
    stop: async () => await source.stop?.(),
  };
}
