/**
 * The node runtime's configuration, with the embedded default: state under /run/bpfd, bpffs at
 * /run/bpfd/fs, the API on the unix socket /run/bpfd/bpfd.sock only (root and group bpfd-admin).
 *
 * @module
 */
import { NonEmpty, PositiveInt, z } from "../model/zod.ts";
import { ImageStoreConfig } from "../model/image.ts";
import { CONTROLLER_SERVICE_ACCOUNT, NAMESPACE } from "../model/names.ts";
import { CsiConfig } from "../csi/config.ts";

/** The bounds of trace sessions: time, script size, concurrency, output, and the child's resources. */
export const TraceConfig = z.strictObject({
  /** The bpftrace executable. */
  bpftrace: z._default(NonEmpty, "bpftrace"),
  defaultSeconds: z._default(PositiveInt, 60),
  maxSeconds: z._default(PositiveInt, 600),
  maxScriptBytes: z._default(PositiveInt, 64 << 10),
  /** Sessions at once on this node (429 above). */
  maxSessions: z._default(PositiveInt, 4),
  /** Output caps: bytes per second, in all, and for the final map printout after SIGINT. */
  bytesPerSecond: z._default(PositiveInt, 256 << 10),
  maxOutputBytes: z._default(PositiveInt, 16 << 20),
  finalOutputBytes: z._default(PositiveInt, 4 << 20),
  /** How long bpftrace has after SIGINT to print its maps and exit before it is killed. */
  graceSeconds: z._default(PositiveInt, 5),
  /** The child's memory (cgroup v1 memory limit; RLIMIT_AS four times that) and CPU share (percent). */
  memoryBytes: z._default(PositiveInt, 256 << 20),
  cpuPercent: z._default(z.int().check(z.minimum(1), z.maximum(100)), 50),
});
export type TraceConfig = z.output<typeof TraceConfig>;

/** Bounds of every listener (runtime/http1.ts). */
const HttpBounds = z.strictObject({
  maxConnections: z._default(z.int().check(z.minimum(1), z.maximum(65536)), 256),
  maxBodyBytes: z._default(z.int().check(z.minimum(1024), z.maximum(1 << 30)), 1 << 20),
  headerTimeoutMs: z._default(z.int().check(z.minimum(100), z.maximum(600_000)), 10_000),
  idleTimeoutMs: z._default(z.int().check(z.minimum(100), z.maximum(3_600_000)), 60_000),
});

/** The runtime configuration (a JSON file and command-line options). */
export const RuntimeConfig = z.strictObject({
  /** Where the state file and the lock live. */
  stateDir: z._default(z.string(), "/run/bpfd"),
  /** The bpffs bpfd pins under (mounted there if it is not). */
  bpffs: z._default(z.string(), "/run/bpfd/fs"),
  /** The unix socket for local callers (root and `apiGroup`); empty for none. */
  socket: z._default(z.string(), "/run/bpfd/bpfd.sock"),
  /** host:port for the TCP listener (needs `tls` and `auth`); empty (the default) for none. */
  listen: z._default(z.string(), ""),
  /** The group that may read map pins (read-only; it does not reach the API). */
  group: z._default(z.string(), "bpfd"),
  /** The group whose members may use the socket: root-equivalent, like Docker's `docker` group. */
  apiGroup: z._default(z.string(), "bpfd-admin"),
  /** Serve TCP without TLS or authentication: anyone who reaches the port is root on this machine. */
  insecureTcpWithoutAuthIUnderstandThisIsRoot: z._default(z.boolean(), false),
  /** Host names the TCP listener answers to besides its address, localhost names and the hostname. */
  allowedHosts: z._default(z.array(NonEmpty), []),
  /** Bounds of every listener (runtime/http1.ts). */
  http: z._default(HttpBounds, () => HttpBounds.parse({})),
  logLevel: z._default(z.enum(["debug", "info", "warn", "error"]), "info"),
  /** The bytecode image store (cache, registries, signature policy). */
  images: z.optional(ImageStoreConfig),
  /** Standalone mode: a directory of BpfProgramConfig files this node converges to; empty for none. */
  configs: z._default(z.string(), ""),
  /** TLS for the TCP listener (PEM files). */
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
  /** Who may call over TCP (runtime/auth/auth.ts); the unix socket knows its callers from the kernel. */
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
  /** Trace sessions (bpftrace children; runtime/trace_sessions.ts). */
  trace: z._default(TraceConfig, () => TraceConfig.parse({})),
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
  /**
   * Turn on the kernel's run statistics (BPF_ENABLE_STATS) while the runtime runs, for the run count and
   * run time metrics; each program run then costs a little more (two clock reads).
   */
  bpfStats: z.optional(z.boolean()),
  /** Serve Prometheus metrics at /metrics (runtime/metrics.ts); on unless false. */
  metrics: z.optional(z.boolean()),
  /**
   * The node inventory (runtime/inventory_kube.ts, docs/inventory.md): this node's BpfNodeInventory
   * object, kept current on the API server; absent for none.
   */
  inventory: z.optional(z.strictObject({
    /** The runtime's credentials (default: auth.kubeconfig, then $KUBECONFIG, then the pod's ServiceAccount). */
    kubeconfig: z.optional(NonEmpty),
    /** At most one write per this many seconds. */
    minWriteSeconds: z._default(z.number().check(z.minimum(0), z.maximum(3600)), 5),
    /** A full snapshot (holders, pods) at least this often even when no id changed. */
    fullSeconds: z._default(z.number().check(z.minimum(1), z.maximum(3600)), 30),
    /** The most the object's spec may take as JSON; programs past it are counted in `omitted`. */
    maxBytes: z._default(z.int().check(z.minimum(10_000), z.maximum(1_400_000)), 1_000_000),
    /** Find the processes holding programs bpfd does not manage (/proc). */
    holders: z._default(z.boolean(), true),
  })),
  /** The CSI node plugin `csi.bpfd.io`: pods get map volumes (csi/, docs/csi.md); absent for none. */
  csi: z.optional(CsiConfig),
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
