/**
 * bpfd's cluster controller: `deno task controller`. Watches BpfProgramConfigs and Nodes, keeps one
 * BpfProgram per selected node and has each node runtime converge through its `reconcile` function.
 * With `--standalone DIR` it runs without an API server, on BpfProgramConfig files in DIR, driving the
 * local node runtime.
 *
 * @module
 */
import "../lib/quiet_deprecations.ts"; // first: before @kubernetes/client-node loads Node's punycode
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { Controller } from "./controller.ts";
import { HttpNodeCaller, type NodeAuthOptions } from "./node_client.ts";
import { DEFAULT_NAMESPACE } from "./settings.ts";
import { Standalone } from "./standalone.ts";
import { NodeTokens, serviceAccountOf } from "./node_tokens.ts";
import { NodeSigner } from "./signer.ts";
import { Logger } from "../lib/log.ts";
import { Admission } from "./admission.ts";
import { CONTROLLER_SERVICE_ACCOUNT } from "../model/names.ts";

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
  --node-ca-key FILE       its key: sign node runtimes' certificate requests (signer bpfd.io/node-serving)
  --node-token-file FILE   one bearer token for every node runtime, read again each minute (default: a
                           token per node from the TokenRequest API, bound to audience bpfd.io/node/<node>)
  --service-account NS/SA  the ServiceAccount those tokens are for (default: the one of the in-cluster or
                           kubeconfig token, else <namespace>/bpfd-controller)
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

  --web-listen HOST:PORT   serve the inventory page and /metrics (controller/web.ts; docs/inventory.md)
  --web-cert FILE          --web-key FILE: TLS for it (plain HTTP without: keep it on loopback)

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
    "node-ca-key": { type: "string" },
    "node-token-file": { type: "string" },
    policy: { type: "boolean" },
    "webhook-listen": { type: "string" },
    "webhook-cert": { type: "string" },
    "webhook-key": { type: "string" },
    "service-account": { type: "string" },
    standalone: { type: "string" },
    runtime: { type: "string" },
    "node-name": { type: "string" },
    "node-labels": { type: "string" },
    "status-dir": { type: "string" },
    "log-level": { type: "string" },
    "web-listen": { type: "string" },
    "web-cert": { type: "string" },
    "web-key": { type: "string" },
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

/** A token file read again each minute (projected tokens rotate). */
function tokenFile(file: string): () => Promise<string> {
  let cached: { token: string; at: number } | undefined;
  return async () => {
    if (!cached || Date.now() - cached.at > 60_000) {
      cached = { token: (await Deno.readTextFile(file)).trim(), at: Date.now() };
    }
    return cached.token;
  };
}

/**
 * How the controller authenticates to node runtimes: `--node-ca`, and `--node-token-file`, or (cluster
 * mode) a token per node from the TokenRequest API, or (standalone) the in-cluster token.
 */
async function nodeAuth(kc: k8s.KubeConfig | undefined): Promise<NodeAuthOptions> {
  const caCerts = values["node-ca"] ? [await Deno.readTextFile(values["node-ca"])] : undefined;
  if (values["node-token-file"]) return { caCerts, token: tokenFile(values["node-token-file"]) };
  const inCluster = await Deno.readTextFile(SA_TOKEN).then((t) => t.trim(), () => undefined);
  if (!kc) return { caCerts, token: inCluster ? tokenFile(SA_TOKEN) : undefined };
  const [ns, name] = values["service-account"]?.split("/") ?? [];
  const account = ns && name
    ? { namespace: ns, name }
    : serviceAccountOf(inCluster ?? kc.getCurrentUser()?.token ?? "") ??
      { namespace: values.namespace ?? DEFAULT_NAMESPACE, name: CONTROLLER_SERVICE_ACCOUNT };
  const tokens = new NodeTokens(kc, { namespace: account.namespace, serviceAccount: account.name });
  return { caCerts, token: (node) => tokens.token(node.name) };
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
  const admission = await Admission.start(
    {
      enforce: values.policy,
      listen: values["webhook-listen"],
      certFile: values["webhook-cert"],
      keyFile: values["webhook-key"],
      kubeconfig: values.kubeconfig,
    },
    kc,
    new Logger(logLevel ?? "info"),
  );
  const c = new Controller({
    kc,
    policy: admission?.policy,
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
  const web = values["web-listen"]
    ? await (await import("./web.ts")).startWeb(kc, c, {
      listen: values["web-listen"],
      certFile: values["web-cert"],
      keyFile: values["web-key"],
    })
    : undefined;
  await admission?.serve(c);
  const signer = values["node-ca-key"] && values["node-ca"]
    ? new NodeSigner(kc, {
      ca: {
        cert: await Deno.readTextFile(values["node-ca"]),
        key: await Deno.readTextFile(values["node-ca-key"]),
      },
      namespace: values.namespace ?? DEFAULT_NAMESPACE,
      log: new Logger(logLevel ?? "info", { component: "signer" }),
    })
    : undefined;
  signer?.start();
  stop = async () => {
    await web?.shutdown();
    await signer?.stop();
    await admission?.stop();
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
