/**
 * Names the cluster side and the node side must agree on: the namespace and ServiceAccounts of bpfd's
 * deployment, the node API's authorization attributes, the audience a token for one node is bound to,
 * and bpfd's reserved metadata keys on programs.
 *
 * @example
 * ```ts
 * nodeAudience("node-a"); // "bpfd.io/node/node-a"
 * ```
 * @module
 */

/** The namespace everything namespaced goes into. */
export const NAMESPACE = "bpfd";
/** The ServiceAccount of the controller: it calls node runtimes, with a token per node. */
export const CONTROLLER_SERVICE_ACCOUNT = "bpfd-controller";
/** The ServiceAccount of the node runtimes: they review tokens and access. */
export const NODE_SERVICE_ACCOUNT = "bpfd-node";

/** The authorization attributes of the node API (kubelet-like: a subresource of the Node). */
export const NODE_API_ATTRIBUTES = { group: "", resource: "nodes", subresource: "bpfd" } as const;

/** The audience a token must be bound to for the node runtime of `nodeName` to accept it. */
export function nodeAudience(nodeName: string): string {
  return `bpfd.io/node/${nodeName}`;
}

/** Metadata keys with this prefix are bpfd's own: only `reconcile` sets them, callers of `load` may not. */
export const RESERVED_METADATA_PREFIX = "bpfd.io/";
/** The BpfProgram a program was loaded for by `reconcile`. */
export const OWNER_KEY = "bpfd.io/owner";
/** The BpfProgramConfig a program was loaded for by `reconcile`. */
export const CONFIG_KEY = "bpfd.io/config";
/** The hash of the spec `reconcile` loaded a program from. */
export const HASH_KEY = "bpfd.io/spec-hash";

/** The signer of node runtimes' serving certificates (CertificateSigningRequest `spec.signerName`). */
export const NODE_SIGNER_NAME = "bpfd.io/node-serving";

/** The common name a node runtime's certificate request must carry. */
export function nodeCommonName(nodeName: string): string {
  return `system:bpfd:node:${nodeName}`;
}
