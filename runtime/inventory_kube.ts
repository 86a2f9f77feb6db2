/**
 * The node inventory on the API server (`inventory` in the runtime configuration): writes this node's
 * `BpfNodeInventory` (create, or replace with the last resourceVersion; a conflict re-reads it), Events on
 * the Node object (namespace `default`, as the kubelet writes them), and lists the pods of this node to
 * name holders' pods. `@kubernetes/client-node` is imported only when the inventory is configured.
 *
 * @example
 * ```ts
 * const inventory = await startInventory(node); // undefined when config.inventory is absent
 * await inventory?.stop();
 * ```
 * @module
 */
import { INVENTORY } from "../model/inventory.ts";
import type { BpfNodeInventorySpec } from "../model/inventory.ts";
import type { Node } from "./ctx.ts";
import { type InventoryApi, InventoryPublisher } from "./inventory_publish.ts";

const codeOf = (e: unknown) => (e as { code?: number })?.code;

/** An InventoryApi on the cluster of `kubeconfig` (or $KUBECONFIG, in-cluster, ~/.kube/config). */
export async function kubeInventoryApi(nodeName: string, kubeconfig?: string): Promise<InventoryApi> {
  const k8s = await import("@kubernetes/client-node");
  const kc = new k8s.KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const names = { group: INVENTORY.group, version: INVENTORY.version, plural: INVENTORY.plural };
  let resourceVersion: string | undefined;
  const body = (spec: BpfNodeInventorySpec) => ({
    apiVersion: `${INVENTORY.group}/${INVENTORY.version}`,
    kind: INVENTORY.kind,
    metadata: {
      name: nodeName,
      labels: { "app.kubernetes.io/part-of": "bpfd", "bpfd.io/node": nodeName },
      ...(resourceVersion ? { resourceVersion } : {}),
    },
    spec,
  });
  // deno-lint-ignore no-explicit-any
  const rvOf = (o: any) => o?.metadata?.resourceVersion as string | undefined;
  const reread = async () => {
    try {
      resourceVersion = rvOf(await custom.getClusterCustomObject({ ...names, name: nodeName }));
    } catch (err) {
      if (codeOf(err) !== 404) throw err;
      resourceVersion = undefined;
    }
  };
  return {
    async write(spec) {
      for (let attempt = 0;; attempt++) {
        try {
          resourceVersion = rvOf(
            resourceVersion
              ? await custom.replaceClusterCustomObject({ ...names, name: nodeName, body: body(spec) })
              : await custom.createClusterCustomObject({ ...names, body: body(spec) }),
          );
          return;
        } catch (err) {
          if (attempt >= 2 || ![404, 409].includes(codeOf(err) ?? 0)) throw err;
          await reread();
        }
      }
    },
    async event({ reason, message, key }) {
      const now = new Date().toISOString();
      const hash = Array.from(
        new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key))).slice(0, 6),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
      await core.createNamespacedEvent({
        namespace: "default",
        body: {
          metadata: { name: `${nodeName}.bpfd.${hash}.${Date.now().toString(36)}`, namespace: "default" },
          involvedObject: { apiVersion: "v1", kind: "Node", name: nodeName, uid: nodeName },
          reason,
          message,
          type: "Warning",
          source: { component: "bpfd-node", host: nodeName },
          firstTimestamp: now as unknown as Date,
          lastTimestamp: now as unknown as Date,
          count: 1,
        },
      });
    },
    async pods() {
      const list = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${nodeName}` });
      return new Map(
        list.items.filter((p) => p.metadata?.uid).map((p) => [
          p.metadata!.uid!,
          `${p.metadata!.namespace}/${p.metadata!.name}`,
        ]),
      );
    },
  };
}

/** Starts publishing the inventory when the configuration asks for it. */
export async function startInventory(node: Node, nodeName: string): Promise<InventoryPublisher | undefined> {
  const inv = node.config.inventory;
  if (!inv) return undefined;
  const api = await kubeInventoryApi(nodeName, inv.kubeconfig ?? node.config.auth?.kubeconfig);
  const publisher = new InventoryPublisher(node, api, {
    nodeName,
    minWriteSeconds: inv.minWriteSeconds,
    fullSeconds: inv.fullSeconds,
    maxBytes: inv.maxBytes,
    holders: inv.holders,
  }, node.log.with({ component: "inventory" }));
  publisher.start();
  node.log.info("inventory: publishing", { node: nodeName });
  return publisher;
}
