/**
 * `@kubernetes/client-node`, imported on first use and without Node's punycode deprecation warning, for
 * processes that must not pay for it until they talk to an API server (the node runtime).
 *
 * @example
 * ```ts
 * const k8s = await kubeClient();
 * const kc = new k8s.KubeConfig();
 * ```
 * @module
 */

/** The client library, loaded once. */
export async function kubeClient(): Promise<typeof import("@kubernetes/client-node")> {
  await import("./quiet_deprecations.ts");
  return await import("@kubernetes/client-node");
}
