/**
 * The node runtime's configuration, with the embedded default: state under /run/bpfd, bpffs at
 * /run/bpfd/fs, the API on /run/bpfd/bpfd.sock and 127.0.0.1:50052.
 *
 * @module
 */
import { z } from "zod";
import { ImageStoreConfig } from "./image/schema.ts";

export const RuntimeConfig = z.object({
  /** Where the state file and the lock live. */
  stateDir: z.string().default("/run/bpfd"),
  /** The bpffs bpfd pins under (mounted there if it is not). */
  bpffs: z.string().default("/run/bpfd/fs"),
  /** The unix socket for local callers (root and the `group`); empty for none. */
  socket: z.string().default("/run/bpfd/bpfd.sock"),
  /** host:port for the TCP listener; empty for none. */
  listen: z.string().default("127.0.0.1:50052"),
  /** The group that may read map pins and use the socket. */
  group: z.string().default("bpfd"),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
  /** The bytecode image store (cache, registries, signature policy). */
  images: ImageStoreConfig.optional(),
  /** Standalone mode: a directory of BpfProgramConfig files this node converges to; empty for none. */
  configs: z.string().default(""),
  /** TLS for the TCP listener (PEM files); without it the listener speaks plain HTTP. */
  tls: z.object({ certFile: z.string().min(1), keyFile: z.string().min(1) }).strict().optional(),
  /** Who may call over TCP (runtime/auth/auth.ts); the unix socket is guarded by its file permissions. */
  auth: z.object({
    /** none (default), kubernetes (TokenReview + SubjectAccessReview), tokenFile (standalone). */
    mode: z.enum(["none", "kubernetes", "tokenFile"]).default("none"),
    /** kubernetes: the runtime's credentials (default: $KUBECONFIG, in-cluster, ~/.kube/config). */
    kubeconfig: z.string().min(1).optional(),
    /** kubernetes: this node's Node name, the object access is checked on (default $NODE_NAME, hostname). */
    nodeName: z.string().min(1).optional(),
    /** tokenFile: kube-apiserver's --token-auth-file format. */
    tokenFile: z.string().min(1).optional(),
    /** How long a verdict is reused (default 10). */
    cacheSeconds: z.number().min(0).max(300).default(10),
  }).strict().refine((a) => a.mode !== "tokenFile" || a.tokenFile, {
    message: "mode tokenFile needs tokenFile",
    path: ["tokenFile"],
  }).optional(),
}).strict();
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
