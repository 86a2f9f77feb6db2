/**
 * bpfd's cluster controller: `deno task controller`. Watches BpfProgramConfigs and Nodes, keeps one
 * BpfProgram per selected node and has each node runtime converge through its `reconcile` function.
 * With `--standalone DIR` it runs without an API server, on BpfProgramConfig files in DIR, driving the
 * local node runtime.
 *
 * @module
 */
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { Controller } from "./controller.ts";
import { HttpNodeCaller, type NodeAuthOptions } from "./node_client.ts";
import { DEFAULT_NAMESPACE } from "./settings.ts";
import { Standalone } from "./standalone.ts";
import { Logger } from "../lib/log.ts";
import { PolicyWatch } from "../runtime/policy.ts";
import { clusterSubjects, serveWebhook, webhookApp } from "./webhook.ts";

const USAGE = `usage: deno task controller [options]

Cluster mode (default): watches BpfProgramConfig and Node objects and drives every node's runtime.
  --kubeconfig FILE        kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --namespace NS           namespace of the bpfd-config ConfigMap and the Lease (default ${DEFAULT_NAMESPACE})
  --id NAME                this replica's identity (default <hostname>-<pid>)
  --workers N              parallel reconciles (default 16)
  --no-leader-election     act without holding the Lease (one replica only!)
  --lease-duration SEC     (default 15)   --renew-deadline SEC (default 10)   --retry-period SEC (default 2)
  --resync SEC             override bpfd.resync.seconds of the ConfigMap
  --node-ca FILE           CA of the node runtimes' TLS certificates (then host:port means https)
  --node-token-file FILE   bearer token for node runtimes, read on every call (default: the in-cluster
                           ServiceAccount token, else the kubeconfig user's token)
  --policy                 enforce BpfPolicy: requesters to the nodes, PolicyAllowed conditions, no new loads
                           of forbidden configs (implied by --webhook-listen; docs/policy.md)
  --webhook-listen H:P     serve the admission webhooks (TLS) there, e.g. 0.0.0.0:9443
  --webhook-cert FILE      --webhook-key FILE   the webhook's serving certificate and key (PEM)

Standalone mode: the same logic on BpfProgramConfig files, for one machine.
  --standalone DIR         directory of BpfProgramConfig YAML/JSON files
  --runtime ADDR           the local runtime: unix:/path or host:port (default unix:/run/bpfd/bpfd.sock)
  --node-name NAME         this node's name (default: the hostname)
  --node-labels k=v,...    this node's labels, for nodeselectors
  --status-dir DIR         write each BpfProgram as JSON there

  --log-level LEVEL        debug, info, warn, error`;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    kubeconfig: { type: "string" },
    namespace: { type: "string" },
    id: { type: "string" },
    workers: { type: "string" },
    "no-leader-election": { type: "boolean" },
    "lease-duration": { type: "string" },
    "renew-deadline": { type: "string" },
    "retry-period": { type: "string" },
    resync: { type: "string" },
    "node-ca": { type: "string" },
    "node-token-file": { type: "string" },
    policy: { type: "boolean" },
    "webhook-listen": { type: "string" },
    "webhook-cert": { type: "string" },
    "webhook-key": { type: "string" },
    standalone: { type: "string" },
    runtime: { type: "string" },
    "node-name": { type: "string" },
    "node-labels": { type: "string" },
    "status-dir": { type: "string" },
    "log-level": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
  strict: true,
});
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const sec = (v: string | undefined) => v === undefined ? undefined : Number(v) * 1000;
const logLevel = values["log-level"] as "debug" | "info" | "warn" | "error" | undefined;

const SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/** How the controller authenticates to node runtimes: `--node-ca`, and a token file or the kubeconfig's. */
async function nodeAuth(kc: k8s.KubeConfig | undefined): Promise<NodeAuthOptions> {
  const caCerts = values["node-ca"] ? [await Deno.readTextFile(values["node-ca"])] : undefined;
  const file = values["node-token-file"] ??
    (await Deno.stat(SA_TOKEN).then(() => SA_TOKEN, () => undefined));
  if (file) {
    let cached: { token: string; at: number } | undefined;
    return {
      caCerts,
      token: async () => {
        if (!cached || Date.now() - cached.at > 60_000) {
          cached = { token: (await Deno.readTextFile(file)).trim(), at: Date.now() };
        }
        return cached.token;
      },
    };
  }
  const token = kc?.getCurrentUser()?.token;
  return { caCerts, token: token ? () => token : undefined };
}

/** The cluster's BpfPolicy, watched, when --policy or --webhook-listen asks for enforcement. */
async function startPolicy(level: typeof logLevel) {
  if (!values.policy && !values["webhook-listen"]) return undefined;
  const watch = new PolicyWatch(new Logger(level ?? "info", { component: "policy" }));
  await watch.start(values.kubeconfig);
  return { watch, abort: new AbortController() };
}

let stop: () => Promise<void>;
if (values.standalone) {
  const log = new Logger(logLevel ?? "info", { component: "standalone" });
  const labels = Object.fromEntries(
    (values["node-labels"] ?? "").split(",").filter(Boolean).map((kv) => {
      const i = kv.indexOf("=");
      return i < 0 ? [kv, ""] : [kv.slice(0, i), kv.slice(i + 1)];
    }),
  );
  const name = values["node-name"] ?? Deno.hostname();
  const caller = new HttpNodeCaller(undefined, {}, await nodeAuth(undefined));
  const sa = new Standalone({
    dir: values.standalone,
    node: {
      name,
      labels: { "kubernetes.io/hostname": name, ...labels },
      address: values.runtime ?? "unix:/run/bpfd/bpfd.sock",
    },
    nodes: caller,
    log,
    resyncMs: sec(values.resync),
    statusDir: values["status-dir"],
  });
  await sa.start();
  log.info("standalone controller running", { dir: values.standalone, node: name });
  stop = async () => {
    await sa.stop();
    caller.close();
  };
} else {
  const kc = new k8s.KubeConfig();
  if (values.kubeconfig) kc.loadFromFile(values.kubeconfig);
  else kc.loadFromDefault();
  const policy = await startPolicy(logLevel);
  const c = new Controller({
    kc,
    policy: policy && (() => policy.watch.current()),
    nodes: new HttpNodeCaller(undefined, {}, await nodeAuth(kc)),
    namespace: values.namespace,
    identity: values.id,
    workers: values.workers ? Number(values.workers) : undefined,
    leaderElection: !values["no-leader-election"],
    leaseDurationMs: sec(values["lease-duration"]),
    renewDeadlineMs: sec(values["renew-deadline"]),
    retryPeriodMs: sec(values["retry-period"]),
    resyncMs: sec(values.resync),
    logLevel,
  });
  await c.start();
  if (policy) policy.watch.onChange = () => c.reconciler.resyncAll();
  if (policy && values["webhook-listen"]) {
    const app = webhookApp({
      policy: () => policy.watch.current(),
      log: c.log.with({ component: "webhook" }),
      event: (e) => c.store.event(e),
      knownSubjects: () => clusterSubjects(kc),
    });
    await serveWebhook(app, {
      listen: values["webhook-listen"],
      certFile: values["webhook-cert"] ?? "/etc/bpfd/webhook/tls.crt",
      keyFile: values["webhook-key"] ?? "/etc/bpfd/webhook/tls.key",
      signal: policy.abort.signal,
    });
    c.log.info("admission webhook serving", { listen: values["webhook-listen"] });
  }
  stop = async () => {
    policy?.abort.abort();
    await policy?.watch.stop();
    await c.stop();
  };
}

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    if (stopping) return;
    stopping = true;
    stop().finally(() => Deno.exit(0));
  });
}
