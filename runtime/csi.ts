/**
 * Starts the CSI node plugin `csi.bpfd.io` (csi/, docs/csi.md) when the configuration has `csi`: the map
 * volume records, recovery of what a stopped runtime left, then the gRPC sockets for the kubelet. Imported
 * only then: the gRPC library costs the runtime memory.
 *
 * @example
 * ```ts
 * const csi = config.csi ? await (await import("./csi.ts")).startCsi(node, config.csi) : undefined;
 * ```
 * @module
 */
import type { KubeApi } from "../csi/access.ts";
import type { CsiConfig } from "../csi/config.ts";
import { type CsiPlugin, serveCsi } from "../csi/server.ts";
import { MapVolumes } from "../csi/volumes.ts";
import type { Node } from "./ctx.ts";
import { KubeFetch, KubeStatusError } from "./kube_fetch.ts";

/** The API server through KubeFetch, a 404 as undefined. */
export function kubeApi(kube: KubeFetch): KubeApi {
  return {
    async get<T>(path: string) {
      try {
        return await kube.request<T>("GET", path);
      } catch (err) {
        if (err instanceof KubeStatusError && err.code === 404) return undefined;
        throw err;
      }
    },
    create: <T>(path: string, body: unknown) => kube.request<T>("POST", path, body),
  };
}

/** Recovers the node's map volumes and serves the plugin. */
export async function startCsi(node: Node, config: CsiConfig): Promise<CsiPlugin> {
  const log = node.log.with({ component: "csi" });
  const api = kubeApi(await KubeFetch.load(config.kubeconfig));
  const nodeName = config.nodeName ?? Deno.env.get("NODE_NAME") ?? Deno.hostname();
  const volumes = await MapVolumes.open({ ...config, stateDir: node.config.stateDir, log });
  const removed = await volumes.recover(async (pod) => {
    const found = await api.get<{ metadata?: { uid?: string } }>(
      `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`,
    );
    return found?.metadata?.uid !== pod.uid;
  });
  if (removed.length) log.info("csi: recovered: removed map volumes of pods that are gone", { removed });
  return await serveCsi({
    config,
    volumes,
    access: { api, nodeName, programs: () => node.state.programs() },
    log,
  });
}
