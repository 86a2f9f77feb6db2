/**
 * `bpfd policy check --as USER [--as-group G ...] -f config.yaml [--policy FILE ...] [--kubeconfig F]`:
 * tells beforehand whether BpfPolicy lets USER apply the BpfProgramConfigs in the file, and if not which
 * rule refuses which field — decided by the same evaluator as the admission webhook. The policies come
 * from `--policy` files, or else from the cluster. Exit status 0 when every config is allowed, 1 if not.
 *
 * @example
 * ```sh
 * deno task cli policy check --as alice --as-group system:authenticated -f xdp.yaml
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { loadAllYaml } from "@kubernetes/client-node";
import { BpfPolicy } from "../model/policy.ts";
import { compilePolicy, type Decision } from "../policy/evaluate.ts";
import { configRequest, type ConfigSpecLike } from "../policy/config.ts";

const USAGE =
  `usage: bpfd policy check --as USER [--as-group GROUP ...] -f FILE [--policy FILE ...] [--kubeconfig F]

Decides every BpfProgramConfig in FILE (YAML or JSON, several documents allowed) for USER and GROUPs, as
the admission webhook would: with the BpfPolicy documents of the --policy files, or else the cluster's.
ServiceAccounts are users named system:serviceaccount:NAMESPACE:NAME.`;

// deno-lint-ignore no-explicit-any
type Json = any;

/** The BpfPolicy objects of the files, or of the cluster. */
async function policies(files: string[], kubeconfig: string | undefined): Promise<BpfPolicy[]> {
  let docs: unknown[] = [];
  if (files.length) {
    for (const f of files) docs.push(...loadAllYaml(await Deno.readTextFile(f)) as unknown[]);
  } else {
    const k8s = await import("@kubernetes/client-node");
    const kc = new k8s.KubeConfig();
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else kc.loadFromDefault();
    const list = await kc.makeApiClient(k8s.CustomObjectsApi).listClusterCustomObject({
      group: "bpfd.io",
      version: "v1alpha1",
      plural: "bpfpolicies",
    }) as Json;
    docs = list.items.map((o: Json) => ({ ...o, apiVersion: "bpfd.io/v1alpha1", kind: "BpfPolicy" }));
  }
  return docs.filter((d) => (d as Json)?.kind === "BpfPolicy" || (d as Json)?.kind === "List").flatMap((
    d: Json,
  ) => d.kind === "List" ? d.items : [d]).map((d) => {
    const r = BpfPolicy.safeParse(d);
    if (!r.success) {
      throw new Error(`BpfPolicy ${(d as Json)?.metadata?.name}: ${r.error.issues[0]?.message}`);
    }
    return r.data;
  });
}

/** One line per config: `allowed NAME (rule R)` or `refused NAME: message`. */
export function describe(name: string, d: Decision): string {
  return d.allowed
    ? `allowed ${name} (BpfPolicy rule ${d.rule})`
    : `refused ${name}: ${d.field}: ${d.message}`;
}

/** Runs `bpfd policy ...`; returns the exit status. */
export async function runPolicyCli(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: args[0] === "check" ? args.slice(1) : args,
      options: {
        as: { type: "string" },
        "as-group": { type: "string", multiple: true },
        filename: { type: "string", short: "f" },
        policy: { type: "string", multiple: true },
        kubeconfig: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    console.error(`bpfd policy: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (args[0] !== "check" || !values.as || !values.filename) {
    console.error(USAGE);
    return 2;
  }
  try {
    const policy = compilePolicy(await policies(values.policy ?? [], values.kubeconfig));
    const configs = (loadAllYaml(await Deno.readTextFile(values.filename)) as Json[])
      .filter((d) => d?.kind === "BpfProgramConfig");
    if (!configs.length) throw new Error(`${values.filename} holds no BpfProgramConfig`);
    const subject = { user: values.as, groups: values["as-group"] ?? [] };
    let refused = 0;
    for (const c of configs) {
      const d = policy.decide(configRequest(c.spec as ConfigSpecLike), subject);
      if (!d.allowed) refused++;
      console.log(describe(c.metadata?.name ?? "(unnamed)", d));
    }
    return refused ? 1 : 0;
  } catch (err) {
    console.error(`bpfd policy: ${(err as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await runPolicyCli(Deno.args));
