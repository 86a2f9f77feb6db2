/**
 * The CSI plugin's refusals, each with the gRPC status it is answered with (csi/server.ts maps the code to
 * the number) and a message that names the cause: the kubelet shows it in the pod's Events.
 *
 * @example
 * ```ts
 * throw new CsiError("permission_denied", "ServiceAccount default/app may not use the maps of config x");
 * ```
 * @module
 */

/** gRPC status codes the plugin answers with (snake_case names of grpc's codes). */
export type CsiCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "resource_exhausted"
  | "failed_precondition"
  | "unavailable"
  | "internal";

/** A refusal with its gRPC status. `unavailable` is retried by the kubelet: the pod waits. */
export class CsiError extends Error {
  constructor(readonly code: CsiCode, message: string) {
    super(message);
    this.name = "CsiError";
  }
}
