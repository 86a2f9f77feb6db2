/**
 * The node inventory on the API server (`inventory` in the runtime configuration): writes this node's
 * `BpfNodeInventory` (create, or replace with the last resourceVersion; a conflict re-reads it), Events on
 * the Node object (namespace `default`, as the kubelet writes them), and lists the pods of this node to
 * name holders' pods, through runtime/kube_fetch.ts (not `@kubernetes/client-node`: its memory).
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
import type { PodRef } from "./inventory.ts";
import { type InventoryApi, InventoryPublisher } from "./inventory_publish.ts";
import { KubeFetch, KubeStatusError } from "./kube_fetch.ts";

/** An InventoryApi on the cluster of `kubeconfig` (or $KUBECONFIG, or the pod's ServiceAccount). */
export async function kubeInventoryApi(nodeName: string, kubeconfig?: string): Promise<InventoryApi> {
  const kube = await KubeFetch.load(kubeconfig);
  const base = `/apis/${INVENTORY.group}/${INVENTORY.version}/${INVENTORY.plural}`;
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
  type Obj = { metadata?: { resourceVersion?: string } };
  const reread = async () => {
    try {
      resourceVersion = (await kube.request<Obj>("GET", `${base}/${nodeName}`)).metadata?.resourceVersion;
    } catch (err) {
      if (!(err instanceof KubeStatusError && err.code === 404)) throw err;
      resourceVersion = undefined;
    }
  };
  return {
    async write(spec) {
      for (let attempt = 0;; attempt++) {
        try {
          const written = resourceVersion
            ? await kube.request<Obj>("PUT", `${base}/${nodeName}`, body(spec))
            : await kube.request<Obj>("POST", base, body(spec));
          resourceVersion = written.metadata?.resourceVersion;
          return;
        } catch (err) {
          if (attempt >= 2 || !(err instanceof KubeStatusError && [404, 409].includes(err.code))) throw err;
          await reread();
        }
      }
    },
    async event({ reason, message, key }) {
      const now = new Date().toISOString();
      const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
      const hash = Array.from(new Uint8Array(digest).slice(0, 6), (b) => b.toString(16).padStart(2, "0"))
        .join("");
      await kube.request("POST", "/api/v1/namespaces/default/events", {
        metadata: { name: `${nodeName}.bpfd.${hash}.${Date.now().toString(36)}`, namespace: "default" },
        involvedObject: { apiVersion: "v1", kind: "Node", name: nodeName, uid: nodeName },
        reason,
        message,
        type: "Warning",
        source: { component: "bpfd-node", host: nodeName },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      });
    },
    async pods() {
      type Status = { name?: string; containerID?: string };
      type Pods = {
        items: Array<{
          metadata?: { uid?: string; namespace?: string; name?: string };
          status?: { containerStatuses?: Status[]; initContainerStatuses?: Status[] };
        }>;
      };
      const list = await kube.request<Pods>(
        "GET",
        `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${nodeName}`)}`,
      );
      const found = new Map<string, PodRef>();
      for (const { metadata: m, status } of list.items) {
        if (!m?.uid) continue;
        const ref = { pod: `${m.namespace}/${m.name}`, podUid: m.uid };
        found.set(m.uid, ref);
        for (const c of [...status?.containerStatuses ?? [], ...status?.initContainerStatuses ?? []]) {
          const id = c.containerID?.replace(/^[a-z]+:\/\//, ""); // containerd://<id>
          if (id) found.set(id, { ...ref, ...(c.name ? { container: c.name } : {}) });
        }
      }
      return found;
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
