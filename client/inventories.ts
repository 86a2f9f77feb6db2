/**
 * Reads the node inventories (`BpfNodeInventory`, one per node) with the caller's own credentials, so
 * what a user sees follows RBAC (`bpfd-bpfprogram-viewer` reads them). Credentials come from a kubeconfig,
 * optionally with a bearer token and CA file given instead of the kubeconfig's.
 *
 * @example
 * ```ts
 * const inventories = new NodeInventories(clusterConfig({ kubeconfig: "~/.kube/config" }));
 * for (const inv of await inventories.list()) console.log(inv.spec.node, inv.spec.summary);
 * ```
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { type BpfNodeInventorySpec, INVENTORY } from "../model/inventory.ts";

/** How to reach the API server: a kubeconfig, and optionally a token, CA file or server to use instead. */
export interface ClusterAccess {
  kubeconfig?: string;
  token?: string;
  ca?: string;
  server?: string;
}

/** One node's inventory object. */
export interface NodeInventory {
  metadata: { name: string; resourceVersion?: string };
  spec: BpfNodeInventorySpec;
}

/** The API server refused (401/403) or failed; `status` is its HTTP status. */
export class ClusterReadError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "ClusterReadError";
  }
}

/** A KubeConfig for `access` ($KUBECONFIG, in-cluster or ~/.kube/config when no file is given). */
export function clusterConfig(access: ClusterAccess): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (access.kubeconfig) kc.loadFromFile(access.kubeconfig);
  else if (access.server && access.token) {
    kc.loadFromOptions({
      clusters: [{ name: "c", server: access.server, caFile: access.ca, skipTLSVerify: false }],
      users: [{ name: "u", token: access.token }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    return kc;
  } else kc.loadFromDefault();
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster) throw new ClusterReadError(0, "the kubeconfig names no current cluster");
  if (access.token || access.ca || access.server) {
    kc.loadFromOptions({
      clusters: [{
        ...cluster,
        name: "c",
        server: access.server ?? cluster.server,
        ...(access.ca ? { caFile: access.ca, caData: undefined } : {}),
      }],
      users: [access.token ? { name: "u", token: access.token } : { ...user!, name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
  }
  return kc;
}

function refusal(err: unknown): ClusterReadError {
  const raw = (err as { code?: unknown })?.code;
  const code = typeof raw === "number" ? raw : 0;
  // deno-lint-ignore no-explicit-any
  const body = (err as any)?.body;
  let message = (err as Error)?.message ?? String(err);
  try {
    message = (typeof body === "string" ? JSON.parse(body) : body)?.message ?? message;
  } catch { /* not JSON: keep the client's message */ }
  return new ClusterReadError(code, message);
}

/** The BpfNodeInventory objects of one cluster. */
export class NodeInventories {
  #api: k8s.CustomObjectsApi;
  constructor(kc: k8s.KubeConfig) {
    this.#api = kc.makeApiClient(k8s.CustomObjectsApi);
  }

  /** Every node's inventory, by node name. */
  async list(): Promise<NodeInventory[]> {
    try {
      const r = await this.#api.listClusterCustomObject({
        group: INVENTORY.group,
        version: INVENTORY.version,
        plural: INVENTORY.plural,
      }) as { items: NodeInventory[] };
      return r.items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    } catch (err) {
      throw refusal(err);
    }
  }

  /** The inventory of node `name`, or undefined when it has none. */
  async get(name: string): Promise<NodeInventory | undefined> {
    try {
      return await this.#api.getClusterCustomObject({
        group: INVENTORY.group,
        version: INVENTORY.version,
        plural: INVENTORY.plural,
        name,
      }) as NodeInventory;
    } catch (err) {
      if ((err as { code?: number })?.code === 404) return undefined;
      throw refusal(err);
    }
  }
}
