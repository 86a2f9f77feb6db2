/**
 * Where `bpfd trace` goes in a cluster, found with the user's kubeconfig: the Node named by `--node`,
 * those a label selector picks (`--nodes`), or the node of a pod (`--pod`, with the container whose root
 * uprobe paths are read in). Each node runtime is called at its InternalIP over TLS checked against the
 * bpfd node CA, with a token bound to that node's audience (a file, or a TokenRequest).
 *
 * @example
 * ```ts
 * const targets = await clusterTargets({ nodes: "role=worker", "node-ca": "ca.crt", port: "50052" });
 * ```
 * @module
 */
import { nodeAudience } from "../model/names.ts";

/** One node runtime to call. */
export interface Target {
  node: string;
  url: string;
  client?: Deno.HttpClient;
  headers?: Record<string, string>;
  /** What the trace input gets for this target (the pod's container). */
  input?: Record<string, unknown>;
}

/** The options clusterTargets reads. */
export interface ClusterOptions {
  node?: string;
  nodes?: string;
  pod?: string;
  container?: string;
  port?: string;
  "node-ca"?: string;
  "token-file"?: string;
  "service-account"?: string;
}

type Core = import("@kubernetes/client-node").CoreV1Api;
type KubeNode = import("@kubernetes/client-node").V1Node;

/** The node runtimes the options name, each with its client, token and input. */
export async function clusterTargets(v: ClusterOptions): Promise<Target[]> {
  const k8s = await import("@kubernetes/client-node");
  const kc = new k8s.KubeConfig();
  kc.loadFromDefault();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  if (!v["node-ca"]) throw new Error("--node-ca FILE is needed to check the node runtimes' certificates");
  const caCerts = [await Deno.readTextFile(v["node-ca"])];
  let nodes: KubeNode[];
  let input: Record<string, unknown> | undefined;
  if (v.pod) {
    const [namespace, name] = v.pod.includes("/") ? v.pod.split("/", 2) : ["default", v.pod];
    const pod = await core.readNamespacedPod({ namespace, name });
    const statuses = pod.status?.containerStatuses ?? [];
    const status = v.container ? statuses.find((s) => s.name === v.container) : statuses[0];
    if (!pod.spec?.nodeName) throw new Error(`pod ${namespace}/${name} is not on a node yet`);
    if (!status?.containerID) {
      throw new Error(`pod ${namespace}/${name} has no running container ${v.container ?? ""}`.trim());
    }
    nodes = [await core.readNode({ name: pod.spec.nodeName })];
    input = { containerId: status.containerID };
  } else if (v.node) {
    nodes = [await core.readNode({ name: v.node })];
  } else {
    nodes = (await core.listNode({ labelSelector: v.nodes })).items;
  }
  return await Promise.all(nodes.map(async (node) => {
    const name = node.metadata!.name!;
    const addresses = node.status?.addresses ?? [];
    const address = (addresses.find((a) => a.type === "InternalIP") ?? addresses[0])?.address;
    if (!address) throw new Error(`node ${name} has no address`);
    const host = address.includes(":") ? `[${address}]` : address;
    return {
      node: name,
      url: `https://${host}:${v.port ?? "50052"}`,
      client: Deno.createHttpClient({ caCerts }),
      headers: { authorization: `Bearer ${await tokenFor(core, name, v)}` },
      input,
    };
  }));
}

/** A token for `node`'s audience: from `--token-file`, or a TokenRequest for `--service-account`. */
async function tokenFor(core: Core, node: string, v: ClusterOptions): Promise<string> {
  if (v["token-file"]) return (await Deno.readTextFile(v["token-file"])).trim();
  const sa = v["service-account"];
  if (!sa?.includes("/")) {
    throw new Error(
      `a token for ${nodeAudience(node)} is needed: --token-file FILE, or --service-account NS/NAME ` +
        "(a ServiceAccount bound to bpfd-tracer that you may create tokens for)",
    );
  }
  const [namespace, name] = sa.split("/", 2);
  const r = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [nodeAudience(node)], expirationSeconds: 600 } },
  });
  if (!r.status?.token) throw new Error(`TokenRequest for ${nodeAudience(node)} answered no token`);
  return r.status.token;
}
