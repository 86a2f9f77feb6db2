/**
 * The node runtime's configuration, with the embedded default: state under /run/bpfd, bpffs at
 * /run/bpfd/fs, the API on /run/bpfd/bpfd.sock and 127.0.0.1:50052.
 *
 * @module
 */
import { NonEmpty, z } from "../model/zod.ts";
import { ImageStoreConfig } from "../model/image.ts";
import { CONTROLLER_SERVICE_ACCOUNT, NAMESPACE } from "../model/names.ts";

export const RuntimeConfig = z.strictObject({
  /** Where the state file and the lock live. */
  stateDir: z._default(z.string(), "/run/bpfd"),
  /** The bpffs bpfd pins under (mounted there if it is not). */
  bpffs: z._default(z.string(), "/run/bpfd/fs"),
  /** The unix socket for local callers (root and the `group`); empty for none. */
  socket: z._default(z.string(), "/run/bpfd/bpfd.sock"),
  /** host:port for the TCP listener; empty for none. */
  listen: z._default(z.string(), "127.0.0.1:50052"),
  /** The group that may read map pins and use the socket. */
  group: z._default(z.string(), "bpfd"),
  logLevel: z._default(z.enum(["debug", "info", "warn", "error"]), "info"),
  /** The bytecode image store (cache, registries, signature policy). */
  images: z.optional(ImageStoreConfig),
  /** Standalone mode: a directory of BpfProgramConfig files this node converges to; empty for none. */
  configs: z._default(z.string(), ""),
  /** TLS for the TCP listener (PEM files); without it the listener speaks plain HTTP. */
  tls: z.optional(z.strictObject({
    certFile: NonEmpty,
    keyFile: NonEmpty,
    /**
     * Make a fresh key at start and have the cluster sign a certificate for this node through the CSR API
     * (runtime/auth/serving_cert.ts), written to these files, before anything is served; the request is
     * made with `auth.kubeconfig`'s credentials (default: in-cluster).
     */
    request: z.optional(z.boolean()),
  })),
  /** Who may call over TCP (runtime/auth/auth.ts); the unix socket is guarded by its file permissions. */
  auth: z.optional(
    z.strictObject({
      /** none (default), kubernetes (TokenReview + SubjectAccessReview), tokenFile (standalone). */
      mode: z._default(z.enum(["none", "kubernetes", "tokenFile"]), "none"),
      /** kubernetes: the runtime's credentials (default: $KUBECONFIG, in-cluster, ~/.kube/config). */
      kubeconfig: z.optional(NonEmpty),
      /** kubernetes: this node's Node name, the object access is checked on (default $NODE_NAME, hostname). */
      nodeName: z.optional(NonEmpty),
      /** tokenFile: kube-apiserver's --token-auth-file format. */
      tokenFile: z.optional(NonEmpty),
      /** How long a verdict is reused (default 10). */
      cacheSeconds: z._default(z.number().check(z.minimum(0), z.maximum(300)), 10),
    }).check(z.refine((a) => a.mode !== "tokenFile" || a.tokenFile, {
      message: "mode tokenFile needs tokenFile",
      path: ["tokenFile"],
    })),
  ),
  /** BpfPolicy enforcement (runtime/policy.ts); absent: no policy, every call is allowed. */
  policy: z.optional(
    z.strictObject({
      /** kubernetes: every BpfPolicy of the cluster (watched); file: BpfPolicy documents in `file`. */
      source: z.enum(["kubernetes", "file"]),
      file: z.optional(NonEmpty),
      /** kubernetes: credentials to read BpfPolicies (default: auth.kubeconfig, in-cluster, ...). */
      kubeconfig: z.optional(NonEmpty),
      /** Users trusted to name a config's requester in `reconcile` (the controller's ServiceAccount). */
      controllers: z._default(z.array(NonEmpty), [
        `system:serviceaccount:${NAMESPACE}:${CONTROLLER_SERVICE_ACCOUNT}`,
      ]),
    }).check(
      z.refine((p) => p.source !== "file" || p.file, { message: "source file needs file", path: ["file"] }),
    ),
  ),
});
export type RuntimeConfig = z.output<typeof RuntimeConfig>;

/** The configuration from an optional JSON file, overridden by the given values. */
export async function loadConfig(
  file: string | undefined,
  overrides: Partial<RuntimeConfig>,
): Promise<RuntimeConfig> {
  const fromFile = file ? JSON.parse(await Deno.readTextFile(file)) : {};
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return RuntimeConfig.parse({ ...fromFile, ...defined });
}
