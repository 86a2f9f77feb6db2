/**
 * The CSI node plugin's part of the runtime configuration (`csi` in runtime/config.ts): its driver name, the
 * kubelet's directory and the bounds of what a caller can make it hold.
 *
 * @example
 * ```ts
 * const csi = CsiConfig.parse({}); // csi.bpfd.io under /var/lib/kubelet
 * ```
 * @module
 */
import { NonEmpty, PositiveInt, z } from "../model/zod.ts";

/** The CSI plugin's configuration; absent from the runtime's: no plugin (and no gRPC library loaded). */
export const CsiConfig = z.strictObject({
  /** The CSI driver's name (the CSIDriver object's). */
  driverName: z._default(NonEmpty, "csi.bpfd.io"),
  /** The kubelet's root directory: its plugins/, plugins_registry/ and pods/ are under it. */
  kubeletDir: z._default(NonEmpty, "/var/lib/kubelet"),
  /** Credentials for pods, configs and SubjectAccessReviews (default: $KUBECONFIG, then in-cluster). */
  kubeconfig: z.optional(NonEmpty),
  /** This node's Node name (default: $NODE_NAME, then the hostname). */
  nodeName: z.optional(NonEmpty),
  /** Map volumes on this node at once. */
  maxVolumes: z._default(PositiveInt, 256),
  /** Map volumes of one pod at once. */
  maxVolumesPerPod: z._default(PositiveInt, 8),
  /** Maps in one volume. */
  maxMapsPerVolume: z._default(PositiveInt, 16),
});
export type CsiConfig = z.output<typeof CsiConfig>;

/** Where the kubelet finds the plugin: its registration socket and its CSI endpoint. */
export function csiSockets(config: CsiConfig): { registration: string; endpoint: string } {
  const dir = config.kubeletDir.replace(/\/+$/, "");
  return {
    registration: `${dir}/plugins_registry/${config.driverName}-reg.sock`,
    endpoint: `${dir}/plugins/${config.driverName}/csi.sock`,
  };
}
