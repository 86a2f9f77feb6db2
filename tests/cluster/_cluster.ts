/**
 * The cluster tier's helpers: the one-node cluster of deploy/cluster.ts (kept when it already runs,
 * started — and stopped again by {@link ClusterHandle.release} — when it does not), commands in the node's
 * and the peer's namespaces, kubectl with JSON, a registry in the peer's namespace for bytecode images.
 *
 * @module
 */
import {
  BUSYBOX_IMAGE,
  down,
  IN_NODE,
  IN_PEER,
  isUp,
  KUBECONFIG,
  kubectl,
  KUBELET_DIR,
  NODE_IP,
  NODE_NAME,
  PEER_IP,
  run,
  type RunResult,
  up,
  waitUntil,
} from "../../deploy/cluster.ts";
import { BPFD_GID, buildImage, IMAGE_ARCHIVE, IMAGE_REF } from "../../deploy/image.ts";

export {
  BPFD_GID,
  BUSYBOX_IMAGE,
  IMAGE_ARCHIVE,
  IMAGE_REF,
  KUBECONFIG,
  kubectl,
  KUBELET_DIR,
  NODE_IP,
  NODE_NAME,
  PEER_IP,
};
export { run, waitUntil };

export const root = new URL("../..", import.meta.url).pathname;

// deno-lint-ignore no-explicit-any
export type Json = any;

export interface ClusterHandle {
  /** Whether this process started the cluster (and release() stops it). */
  started: boolean;
  /** Stops the cluster if this process started it (BPFD_CLUSTER_KEEP=1 keeps it). */
  release(): Promise<void>;
}

/** Held while a test file uses the cluster: test runs of several worktrees take turns on the one cluster. */
const LOCK_FILE = "/run/lock/bpfd-cluster-tests.lock";

/**
 * The cluster, up (idempotent), with bpfd's image built (if missing) — not deployed. Waits for any other
 * process's test file on the cluster to finish first (one cluster per machine: fixed names and addresses).
 */
export async function useCluster(): Promise<ClusterHandle> {
  const lock = await Deno.open(LOCK_FILE, { create: true, write: true });
  await lock.lock(true);
  try {
    const started = !(await isUp());
    await up({ log: (l) => console.error(`cluster: ${l}`) });
    await buildImage(IMAGE_REF, IMAGE_ARCHIVE).catch(async (e) => {
      if (started && !Deno.env.get("BPFD_CLUSTER_KEEP")) await down();
      throw e;
    });
    return {
      started,
      async release() {
        try {
          if (started && !Deno.env.get("BPFD_CLUSTER_KEEP")) await down();
        } finally {
          lock.close(); // closing the file drops the lock
        }
      },
    };
  } catch (err) {
    lock.close();
    throw err;
  }
}

/** Runs a command in the node (its network and mount namespaces). */
export function inNode(args: string[], stdin?: string): Promise<RunResult> {
  return run(IN_NODE[0], [...IN_NODE.slice(1), ...args], stdin);
}

/** Runs a command in the peer's network namespace. */
export function inPeer(args: string[]): Promise<RunResult> {
  return run(IN_PEER[0], [...IN_PEER.slice(1), ...args]);
}

/** kubectl that must succeed; its stdout parsed as JSON when `-o json` was asked for. */
export async function k(args: string[], stdin?: string): Promise<Json> {
  const r = await kubectl(args, stdin);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
  return args.includes("json") ? JSON.parse(r.stdout) : r.stdout;
}

/** kubectl get -o json, or undefined when the object does not exist. */
export async function get(args: string[]): Promise<Json | undefined> {
  const r = await kubectl(["get", ...args, "-o", "json"]);
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get ${args.join(" ")}: ${r.stderr.trim()}`);
  }
  return JSON.parse(r.stdout);
}

/** The value of condition `type` of an object, or undefined. */
export function condition(o: Json, type: string): Json | undefined {
  return o?.status?.conditions?.find((c: Json) => c.type === type);
}

/** Pods in namespace `ns` with label selector `selector`. */
export async function pods(ns: string, selector: string): Promise<Json[]> {
  return (await k(["-n", ns, "get", "pods", "-l", selector, "-o", "json"])).items;
}

export const isReady = (p: Json) => condition(p, "Ready")?.status === "True";

/** The node image's copy of the XDP counter (no registry needed). */
export const XDP_COUNTER_IN_IMAGE = "/app/bytecode/build/xdp_counter.bpf.o";

/** The seed's BpfProgramConfig: the XDP counter on every node's eth0, from an image url or a path. */
export function xdpCounterConfig(
  name: string,
  bytecode: { imageurl: string } | { path: string } = { path: XDP_COUNTER_IN_IMAGE },
): Json {
  return {
    apiVersion: "bpfd.io/v1alpha1",
    kind: "BpfProgramConfig",
    metadata: { name },
    spec: {
      name: "xdp_counter",
      type: "XDP",
      nodeselector: {},
      attachpoint: { interface: "eth0" },
      bytecode,
    },
  };
}

/** The XDP programs attached to the node's eth0, as bpftool reports them (ids). */
export async function xdpOnEth0(): Promise<number[]> {
  const r = await inNode(["bpftool", "-j", "net", "show", "dev", "eth0"]);
  if (r.code !== 0) throw new Error(`bpftool net show: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as Json[];
  return out.flatMap((o) => o.xdp ?? []).map((x: Json) => x.id);
}

/** Pings the node's eth0 from the peer: the number of replies. */
export async function pingNode(count: number, interval = 0.2): Promise<{ sent: number; received: number }> {
  const r = await inPeer([
    "ping",
    "-n",
    "-q",
    "-c",
    String(count),
    "-i",
    String(interval),
    "-W",
    "1",
    NODE_IP,
  ]);
  const m = r.stdout.match(/(\d+) packets transmitted, (\d+) (?:packets )?received/);
  if (!m) throw new Error(`ping: ${r.stdout}${r.stderr}`);
  return { sent: Number(m[1]), received: Number(m[2]) };
}

/** A registry (Debian's docker-registry) in the peer's namespace: plain HTTP at PEER_IP:5000, or TLS. */
export interface PeerRegistry {
  host: string;
  /** What `bpfd image push` needs to reach it (`--insecure HOST` or `--ca FILE`). */
  pushArgs: string[];
  stop(): Promise<void>;
}

/** Where {@link startPeerRegistry} serves plain HTTP: known before it runs (deploy's `--insecure-registry`). */
export const REGISTRY_HOST = `${PEER_IP}:5000`;

/** With `tls` (PEM), it serves HTTPS at PEER_IP:5443 with that certificate, signed by the CA in `tls.caFile`. */
export async function startPeerRegistry(
  tls?: { cert: string; key: string; caFile: string },
): Promise<PeerRegistry> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-cluster-registry-" });
  const host = tls ? `${PEER_IP}:5443` : REGISTRY_HOST;
  if (tls) {
    await Deno.writeTextFile(`${dir}/tls.crt`, tls.cert);
    await Deno.writeTextFile(`${dir}/tls.key`, tls.key, { mode: 0o600 });
  }
  await Deno.writeTextFile(
    `${dir}/config.yml`,
    `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${dir}/data
http:
  addr: ${host}
${tls ? `  tls:\n    certificate: ${dir}/tls.crt\n    key: ${dir}/tls.key\n` : ""}`,
  );
  const child = new Deno.Command("setpriv", {
    args: ["--pdeathsig", "KILL", "--", ...IN_PEER, "docker-registry", "serve", `${dir}/config.yml`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await waitUntil(
      "the registry",
      20,
      async () => (await inPeer(["bash", "-c", `exec 3<>/dev/tcp/${host.replace(":", "/")}`])).code === 0,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { host, pushArgs: tls ? ["--ca", tls.caFile] : ["--insecure", host], stop };
}

/**
 * The seed's bytecode image (xdp_counter.bpf.o, bpfman's labels) built with `bpfd image build` and pushed
 * with `bpfd image push` from the peer's namespace (where the registry is); returns its reference.
 */
export async function pushXdpCounter(registry: PeerRegistry, repoTag: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-cluster-img-" });
  try {
    const cli = [Deno.execPath(), "run", "-A", `${root}cli/main.ts`, "image"];
    const built = await run(cli[0], [
      ...cli.slice(1),
      "build",
      "-o",
      `${dir}/layout:v1`,
      "--program",
      "xdp_counter=xdp",
      "--map",
      "xdp_packets=array",
      `${root}bytecode/build/xdp_counter.bpf.o`,
    ]);
    if (built.code !== 0) throw new Error(`bpfd image build: ${built.stderr}`);
    const ref = `${registry.host}/${repoTag}`;
    const pushed = await inPeer([...cli, "push", `${dir}/layout:v1`, ref, ...registry.pushArgs]);
    if (pushed.code !== 0) throw new Error(`bpfd image push: ${pushed.stderr}`);
    return ref;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The last `lines` log lines of every bpfd pod (and of its previous container, if it restarted). */
export async function bpfdLogs(lines = 40): Promise<string> {
  const out: string[] = [];
  for (const p of await pods("bpfd", "app.kubernetes.io/part-of=bpfd").catch(() => [])) {
    const name = p.metadata.name;
    for (const previous of [true, false]) {
      const r = await kubectl([
        "-n",
        "bpfd",
        "logs",
        name,
        `--tail=${lines}`,
        ...(previous ? ["--previous"] : []),
      ]);
      if (r.code === 0 && r.stdout.trim()) {
        out.push(`--- ${name}${previous ? " (previous)" : ""}\n${r.stdout.trim()}`);
      }
    }
  }
  return out.join("\n");
}

/** Runs `f`; when it throws, the error carries bpfd's pod logs. */
export async function withLogs<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    const err = e as Error;
    err.message += `\nbpfd's pods:\n${await bpfdLogs()}`;
    throw err;
  }
}

/**
 * A kubeconfig (a temporary file) whose user is ServiceAccount `ns/name`, with the token of its Secret
 * (Kubernetes 1.20 makes one per ServiceAccount). The caller removes the file.
 */
export async function serviceAccountKubeconfig(ns: string, name: string): Promise<string> {
  let token = "";
  await waitUntil(`the token of ServiceAccount ${ns}/${name}`, 30, async () => {
    const sa = await get(["-n", ns, "serviceaccount", name]);
    const secret = sa?.secrets?.[0]?.name;
    const s = secret ? await get(["-n", ns, "secret", secret]) : undefined;
    token = s?.data?.token ? atob(s.data.token) : "";
    return token !== "";
  });
  const admin = await Deno.readTextFile(KUBECONFIG);
  const file = await Deno.makeTempFile({ prefix: `bpfd-${name}-`, suffix: ".kubeconfig" });
  await Deno.writeTextFile(
    file,
    admin.replace(/^users:[\s\S]*?(?=^contexts:)/m, `users:\n- name: admin\n  user:\n    token: ${token}\n`),
  );
  return file;
}

/** Runs deploy/deploy.ts (`deploy ...`, `undeploy ...`) against the cluster. */
export function deployCli(args: string[]): Promise<RunResult> {
  // The cluster's kubelet directory: the CSI driver's sockets and map volumes go there, not into this
  // machine's /var/lib/kubelet.
  return run(Deno.execPath(), [
    "run",
    "-A",
    `${root}deploy/deploy.ts`,
    ...args,
    "--kubeconfig",
    KUBECONFIG,
    "--kubelet-dir",
    KUBELET_DIR,
  ]);
}

/** Undeploys bpfd with its CRDs and objects, if it is there, and waits until its namespace is gone. */
export async function undeployAll(): Promise<void> {
  if (await get(["namespace", "bpfd"]).catch(() => undefined)) {
    await deployCli(["undeploy", "--all", "--timeout", "30"]);
    await waitUntil("namespace bpfd gone", 120, async () => (await get(["namespace", "bpfd"])) === undefined);
  }
}
