/**
 * `deno task cluster up [--deploy] | down | status`: a one-node Kubernetes cluster on this machine, made of
 * real parts, for trying bpfd without a cluster of one's own and for the cluster test tier (tests/cluster/).
 *
 * - The node is a network namespace (`bpfd-node`) whose `eth0` is a veth; its peer is `eth0` in a second
 *   namespace (`bpfd-peer`, 10.123.0.1), from where tests send traffic. Nothing is attached to this
 *   machine's own interfaces; both ends are created inside their namespaces.
 * - The node also has its own mount namespace (a slave copy of the host's, pruned, then rshared, with a
 *   fresh tmpfs on /run): pods' Bidirectional mounts (bpffs at /run/bpfd/fs), containerd's and kubelet's
 *   mounts stay there and vanish with it.
 * - etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd (runc, CNI bridge) and kubelet
 *   all run in the node, like a kubeadm single node; the API server listens on the node's address
 *   (10.123.0.2:6443). The host reaches it on 127.0.0.1:{@link API_PORT} through a relay (socat on the host
 *   → a unix socket → socat in the node), which is what the admin kubeconfig points at.
 * - No kube-proxy is built: the one Service pods need, `kubernetes` (in-cluster clients), is a static DNAT
 *   in the node's namespace, and the API server reaches webhooks' Services at their endpoints
 *   (`--enable-aggregator-routing`). No cluster DNS.
 *
 * Binaries: kube-* and kubectl from Debian's kubernetes 1.20 source, built by tests/k8s/setup.sh into
 * /var/cache/bpfd/kube/bin; etcd, containerd, runc, CNI plugins, socat, umoci and skopeo from Debian
 * (tests/cluster/setup.sh installs all of it). State: /var/lib/bpfd-cluster (removed by `down`).
 * `up` is idempotent and prints, last, `export KUBECONFIG=<admin kubeconfig>`; `down` ends only the
 * processes `up` started (by pid) and leaves no process, mount, namespace, veth or cgroup behind.
 *
 * @module
 */
import "../lib/quiet_deprecations.ts"; // first: before @kubernetes/client-node loads Node's punycode
import { parseArgs } from "node:util";
import { buildBusyboxImages, buildImage, IMAGE_ARCHIVE, IMAGE_CACHE, IMAGE_REF } from "./image.ts";

/** Everything the cluster keeps on disk. */
export const CLUSTER_DIR = Deno.env.get("BPFD_CLUSTER_DIR") ?? "/var/lib/bpfd-cluster";
/** The node's mount namespace file lives here (a private bind mount of its own). */
const NS_DIR = "/run/bpfd-cluster";
const KUBE_BIN = `${Deno.env.get("BPFD_KUBE_CACHE") ?? "/var/cache/bpfd/kube"}/bin`;

/** The port on the host's loopback where the API server answers. */
export const API_PORT = Number(Deno.env.get("BPFD_CLUSTER_PORT") ?? 16443);
export const NODE_NAME = "bpfd-node";
/** The node's network namespace (`/run/netns/bpfd-node`); its eth0 has {@link NODE_IP}. */
export const NODE_NETNS = "bpfd-node";
/** The namespace holding the peer of the node's eth0 ({@link PEER_IP}): where tests send traffic from. */
export const PEER_NETNS = "bpfd-peer";
export const NODE_IP = "10.123.0.2";
export const PEER_IP = "10.123.0.1";
const POD_CIDR = "10.124.0.0/24";
const SERVICE_CIDR = "10.125.0.0/24";
const SERVICE_IP = "10.125.0.1";
/** containerd's sandbox image and a busybox image for pods, both built here from busybox-static. */
export const PAUSE_IMAGE = "localhost/bpfd-pause:1";
export const BUSYBOX_IMAGE = "localhost/bpfd-busybox:1";

const pki = `${CLUSTER_DIR}/pki`;
const bin = `${CLUSTER_DIR}/bin`;
const logs = `${CLUSTER_DIR}/logs`;
const pids = `${CLUSTER_DIR}/pids`;

/** The cluster's admin kubeconfig (on the host: 127.0.0.1:API_PORT). */
export const KUBECONFIG = `${CLUSTER_DIR}/admin.kubeconfig`;
/** kubectl (1.20, matching the API server). */
export const KUBECTL = `${bin}/kubectl`;

/** A command prefix that runs a command in the node: its network and mount namespaces. */
export const IN_NODE = ["nsenter", `--net=/run/netns/${NODE_NETNS}`, `--mount=${NS_DIR}/mnt`, "--"];
/** A command prefix that runs a command in the peer's network namespace. */
export const IN_PEER = ["nsenter", `--net=/run/netns/${PEER_NETNS}`, "--"];

/** The order the node's processes start in (and stop in reverse). */
const PROCESSES = [
  "etcd",
  "apiserver",
  "relay-node",
  "relay-host",
  "kcm",
  "scheduler",
  "containerd",
  "kubelet",
] as const;
type ProcessName = typeof PROCESSES[number];

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; never throws for a non-zero exit. */
export async function run(cmd: string, args: string[], stdin?: string): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/** Runs a command and throws with its stderr when it fails. */
export async function must(cmd: string, args: string[], stdin?: string): Promise<string> {
  const r = await run(cmd, args, stdin);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

/** Polls `check` every 200 ms until it returns true; throws naming `what` after `seconds`. */
export async function waitUntil(what: string, seconds: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${seconds} s waiting for ${what}${last ? ` (${last})` : ""}`);
}

/** kubectl against the cluster, as its admin. */
export function kubectl(args: string[], stdin?: string): Promise<RunResult> {
  return run(KUBECTL, ["--kubeconfig", KUBECONFIG, ...args], stdin);
}

// --- processes ------------------------------------------------------------------------------------------

interface PidFile {
  pid: number;
  /** argv[0] of the process, to tell it from an unrelated process that got the same pid later. */
  exe: string;
}

async function pidOf(name: ProcessName): Promise<number | undefined> {
  let f: PidFile;
  try {
    f = JSON.parse(await Deno.readTextFile(`${pids}/${name}`));
  } catch {
    return undefined;
  }
  try {
    const argv0 = (await Deno.readTextFile(`/proc/${f.pid}/cmdline`)).split("\0")[0];
    return argv0 === f.exe ? f.pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Starts a detached process (its own session, so it outlives this command) in the node, or on the host
 * when `host`; its output goes to logs/NAME.log and its pid to pids/NAME. A running one is kept.
 */
async function start(name: ProcessName, args: string[], host = false): Promise<boolean> {
  if (await pidOf(name)) return false;
  const prefix = host ? [] : IN_NODE;
  const child = new Deno.Command("setsid", {
    args: ["sh", "-c", `exec "$@" >>'${logs}/${name}.log' 2>&1`, "sh", ...prefix, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  // setsid, sh and nsenter exec in turn: the pid is the program's.
  await Deno.writeTextFile(`${pids}/${name}`, JSON.stringify({ pid: child.pid, exe: args[0] }));
  await waitUntil(`${name} to exec`, 10, async () => (await pidOf(name)) !== undefined);
  return true;
}

/** SIGTERM, then SIGKILL after `seconds`; only the pid this cluster recorded. */
async function stop(name: ProcessName, seconds = 10): Promise<void> {
  const pid = await pidOf(name);
  if (pid) await killPid(pid, seconds);
  await Deno.remove(`${pids}/${name}`).catch(() => {});
}

async function killPid(pid: number, seconds: number): Promise<void> {
  const gone = () => exists(`/proc/${pid}`).then((e) => !e);
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline && !(await gone())) await new Promise((r) => setTimeout(r, 100));
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* gone */ }
  while (!(await gone())) await new Promise((r) => setTimeout(r, 50));
}

// --- pieces of the node ---------------------------------------------------------------------------------

async function cert(name: string, subject: string, usage: string, sans = ""): Promise<void> {
  const issued = `${subject} ${usage} ${sans}`;
  const had = await Deno.readTextFile(`${pki}/${name}.issued`).catch(() => undefined);
  if (had === issued && (await exists(`${pki}/${name}.crt`))) return;
  await must("openssl", [
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${pki}/${name}.key`,
    "-out",
    `${pki}/${name}.csr`,
    "-subj",
    subject,
  ]);
  const ext = [
    "basicConstraints=CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    `extendedKeyUsage=${usage}`,
    ...(sans ? [`subjectAltName=${sans}`] : []),
  ];
  await Deno.writeTextFile(`${pki}/${name}.ext`, ext.join("\n") + "\n");
  await must("openssl", [
    "x509",
    "-req",
    "-in",
    `${pki}/${name}.csr`,
    "-CA",
    `${pki}/ca.crt`,
    "-CAkey",
    `${pki}/ca.key`,
    "-CAcreateserial",
    "-out",
    `${pki}/${name}.crt`,
    "-days",
    "3650",
    "-extfile",
    `${pki}/${name}.ext`,
  ]);
  await Deno.remove(`${pki}/${name}.csr`);
  await Deno.remove(`${pki}/${name}.ext`);
  await Deno.writeTextFile(`${pki}/${name}.issued`, issued);
}

function kubeconfigText(server: string, user: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: bpfd
  cluster:
    certificate-authority: ${pki}/ca.crt
    server: ${server}
users:
- name: ${user}
  user:
    client-certificate: ${pki}/${user}.crt
    client-key: ${pki}/${user}.key
contexts:
- name: bpfd
  context: {cluster: bpfd, user: ${user}}
current-context: bpfd
`;
}

/** A CA, the components' certificates (EC P-256) and kubeconfigs, the service-account key pair. */
async function makePki(): Promise<void> {
  await Deno.mkdir(pki, { recursive: true, mode: 0o700 });
  if (!(await exists(`${pki}/ca.crt`))) {
    await must("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      `${pki}/ca.key`,
      "-out",
      `${pki}/ca.crt`,
      "-days",
      "3650",
      "-subj",
      "/CN=bpfd-cluster-ca",
    ]);
  }
  const apiSans = [
    `IP:${NODE_IP}`,
    "IP:127.0.0.1",
    `IP:${SERVICE_IP}`,
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
  ];
  await cert("apiserver", "/CN=kube-apiserver", "serverAuth", apiSans.join(","));
  await cert("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", "clientAuth");
  // The cluster's admin is bpfd's admin too (group bpfd-admins of the default BpfPolicy: any priority,
  // bytecode by path), as a cluster's operator would be.
  await cert("admin", "/O=system:masters/O=bpfd-admins/CN=bpfd-cluster-admin", "clientAuth");
  await cert("kcm", "/CN=system:kube-controller-manager", "clientAuth");
  await cert("scheduler", "/CN=system:kube-scheduler", "clientAuth");
  await cert("kubelet", `/O=system:nodes/CN=system:node:${NODE_NAME}`, "clientAuth");
  await cert("kubelet-serving", `/CN=${NODE_NAME}`, "serverAuth", `IP:${NODE_IP},DNS:${NODE_NAME}`);
  if (!(await exists(`${pki}/sa.pub`))) {
    await must("openssl", ["genrsa", "-out", `${pki}/sa.key`, "2048"]);
    await must("openssl", ["rsa", "-in", `${pki}/sa.key`, "-pubout", "-out", `${pki}/sa.pub`]);
  }
  const inNode = `https://${NODE_IP}:6443`;
  await Deno.writeTextFile(KUBECONFIG, kubeconfigText(`https://127.0.0.1:${API_PORT}`, "admin"));
  await Deno.writeTextFile(`${CLUSTER_DIR}/node-admin.kubeconfig`, kubeconfigText(inNode, "admin"));
  for (const c of ["kcm", "scheduler", "kubelet"]) {
    await Deno.writeTextFile(`${CLUSTER_DIR}/${c}.kubeconfig`, kubeconfigText(inNode, c));
  }
}

/** The node's and the peer's network namespaces, the veth between them, the kubernetes Service's DNAT. */
async function makeNetwork(): Promise<void> {
  for (const ns of [NODE_NETNS, PEER_NETNS]) {
    if (!(await exists(`/run/netns/${ns}`))) await must("ip", ["netns", "add", ns]);
  }
  if ((await run("ip", ["-n", NODE_NETNS, "link", "show", "eth0"])).code !== 0) {
    // Both ends are made inside the namespaces: nothing ever appears in the host's.
    await must("ip", [
      "-n",
      NODE_NETNS,
      "link",
      "add",
      "eth0",
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      PEER_NETNS,
    ]);
    await must("ip", ["-n", NODE_NETNS, "addr", "add", `${NODE_IP}/24`, "dev", "eth0"]);
    await must("ip", ["-n", PEER_NETNS, "addr", "add", `${PEER_IP}/24`, "dev", "eth0"]);
    for (const ns of [NODE_NETNS, PEER_NETNS]) {
      await must("ip", ["-n", ns, "link", "set", "lo", "up"]);
      await must("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    }
    await must("ip", ["-n", NODE_NETNS, "route", "add", "default", "via", PEER_IP]);
    await must("nsenter", [`--net=/run/netns/${NODE_NETNS}`, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  }
  const dnat = [
    "-d",
    `${SERVICE_IP}/32`,
    "-p",
    "tcp",
    "--dport",
    "443",
    "-j",
    "DNAT",
    "--to-destination",
    `${NODE_IP}:6443`,
  ];
  const ipt = (args: string[]) =>
    run("nsenter", [`--net=/run/netns/${NODE_NETNS}`, "iptables", "-t", "nat", ...args]);
  for (const chain of ["OUTPUT", "PREROUTING"]) {
    if ((await ipt(["-C", chain, ...dnat])).code !== 0) {
      const r = await ipt(["-A", chain, ...dnat]);
      if (r.code !== 0) throw new Error(`iptables in ${NODE_NETNS}: ${r.stderr.trim()}`);
    }
  }
}

/**
 * Runs once in the node's new mount namespace (a slave copy of the host's). The copy is pruned first: a
 * copy of a private host mount (another test's bpffs or netns) would keep it alive after the host unmounts
 * it. Kept: /, /proc, /sys with cgroups and tracefs (never a bpffs), /dev. Then / becomes rshared
 * (Bidirectional propagation needs it; the host's / is private, so nothing propagates back), /run a
 * fresh tmpfs, and the paths kubelet and libcni hard-code (/var/log/pods, /var/lib/cni) the cluster's.
 */
const NODE_INIT = `set -e
awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { print $5, $(i + 1); break } }' /proc/self/mountinfo |
  sort -r | while read -r m t; do
  case $m in
  / | /proc | /sys | /dev | /sys/fs/cgroup | /sys/fs/cgroup/* | /sys/kernel/tracing | /dev/*)
    [ "$t" != bpf ] && continue
    ;;
  esac
  umount -l "$m" 2>/dev/null || true
done
mount --make-rshared /
mount -t tmpfs -o mode=0755 tmpfs /run
mount --bind "$1/node/log" /var/log
mount --bind "$1/node/cni" /var/lib/cni
`;

/** Directories the node needs on the host's filesystem that this machine lacks: made, and removed by down. */
const MADE_DIRS = ["/var/lib/cni", "/lib/modules"];

async function makeMountNamespace(): Promise<void> {
  await Deno.mkdir(NS_DIR, { recursive: true });
  if ((await run("mountpoint", ["-q", NS_DIR])).code !== 0) {
    await must("mount", ["--bind", NS_DIR, NS_DIR]);
    await must("mount", ["--make-private", NS_DIR]);
  }
  if (
    (await exists(`${NS_DIR}/mnt`)) && (await run("nsenter", [`--mount=${NS_DIR}/mnt`, "true"])).code === 0
  ) {
    return;
  }
  await Deno.writeTextFile(`${NS_DIR}/mnt`, "");
  await Deno.mkdir(`${CLUSTER_DIR}/node/log`, { recursive: true });
  await Deno.mkdir(`${CLUSTER_DIR}/node/cni`, { recursive: true });
  // The DaemonSet mounts /lib/modules (hostPath type Directory): a kernel without modules has none.
  for (const d of MADE_DIRS) {
    if (!(await exists(d))) {
      await Deno.mkdir(d, { recursive: true });
      await Deno.writeTextFile(`${CLUSTER_DIR}/made-dirs`, d + "\n", { append: true });
    }
  }
  await Deno.writeTextFile(`${CLUSTER_DIR}/node/init.sh`, NODE_INIT);
  await must("unshare", [
    `--mount=${NS_DIR}/mnt`,
    "--propagation",
    "slave",
    "sh",
    `${CLUSTER_DIR}/node/init.sh`,
    CLUSTER_DIR,
  ]);
}

async function writeConfigs(): Promise<void> {
  await Deno.mkdir(`${CLUSTER_DIR}/cni/net.d`, { recursive: true });
  await Deno.mkdir(`${CLUSTER_DIR}/cni/ipam`, { recursive: true });
  await Deno.mkdir(`${CLUSTER_DIR}/containerd`, { recursive: true });
  const cri = `plugins."io.containerd.grpc.v1.cri"`;
  // restrict_oom_score_adj: without CAP_SYS_RESOURCE every sandbox fails (runc: "can't get final child's
  // PID from pipe: EOF") for the pause container's oom_score_adj -998.
  await Deno.writeTextFile(
    `${CLUSTER_DIR}/containerd/config.toml`,
    `version = 2
root = "${CLUSTER_DIR}/containerd/root"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "${CLUSTER_DIR}/containerd/opt"
[${cri}]
  sandbox_image = "${PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [${cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${CLUSTER_DIR}/cni/net.d"
  [${cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
`,
  );
  await Deno.writeTextFile(
    `${CLUSTER_DIR}/cni/net.d/10-bpfd.conflist`,
    JSON.stringify(
      {
        cniVersion: "0.4.0",
        name: "bpfd-cluster",
        plugins: [{
          type: "bridge",
          bridge: "cni0",
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: "host-local",
            dataDir: `${CLUSTER_DIR}/cni/ipam`,
            ranges: [[{ subnet: POD_CIDR }]],
            routes: [{ dst: "0.0.0.0/0" }],
          },
        }],
      },
      null,
      2,
    ) + "\n",
  );
  await Deno.writeTextFile(
    `${CLUSTER_DIR}/kubelet.yaml`,
    `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${pki}/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: ${pki}/kubelet-serving.crt
tlsPrivateKeyFile: ${pki}/kubelet-serving.key
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
`,
  );
}

const ctr = (args: string[]) =>
  run(IN_NODE[0], [...IN_NODE.slice(1), "ctr", "--address", "/run/containerd/containerd.sock", ...args]);

/** The manifest digest an oci-archive's index names. */
async function archiveDigest(archive: string): Promise<string> {
  const index = JSON.parse(await must("tar", ["-xOf", archive, "index.json"]));
  return index.manifests[0].digest;
}

/** Loads an oci-archive into the node's containerd (namespace k8s.io) unless that digest is there. */
export async function importImage(archive: string, ref: string): Promise<boolean> {
  const want = await archiveDigest(archive);
  const have = await ctr(["-n", "k8s.io", "images", "ls", `name==${ref}`]);
  if (have.code === 0 && have.stdout.includes(want)) return false;
  const r = await ctr(["-n", "k8s.io", "images", "import", archive]);
  if (r.code !== 0) throw new Error(`ctr images import ${archive}: ${r.stderr.trim()}`);
  return true;
}

export interface UpOptions {
  /** Also build bpfd's image if it is missing, load it into the node and deploy bpfd with it. */
  deploy?: boolean;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/**
 * Whether the API server answers and the node is Ready: its Ready condition True and its kubelet's
 * heartbeat (the Lease in kube-node-lease, renewed every 10 s) recent — a Node stays Ready for a while after
 * its kubelet died. With `since` (a kubelet just started), Ready must have been reported after it.
 */
export async function isUp(since?: number): Promise<boolean> {
  const node = await kubectl(["get", "node", NODE_NAME, "-o", "json"]).catch(() => undefined);
  if (node?.code !== 0) return false;
  const ready = JSON.parse(node.stdout).status?.conditions?.find((c: { type: string }) => c.type === "Ready");
  if (ready?.status !== "True") return false;
  if (since !== undefined) return Date.parse(ready.lastHeartbeatTime) >= since - 1000;
  const lease = await kubectl([
    "-n",
    "kube-node-lease",
    "get",
    "lease",
    NODE_NAME,
    "-o",
    "jsonpath={.spec.renewTime}",
  ]);
  return lease.code === 0 && Date.parse(lease.stdout.trim()) >= Date.now() - 40_000;
}

/** Runs `f` holding the cluster's lock: one `up` or `down` at a time on this machine. */
async function locked<T>(f: () => Promise<T>): Promise<T> {
  const dir = Deno.env.get("BPFD_KUBE_CACHE")?.replace(/\/kube$/, "") ?? "/var/cache/bpfd";
  await Deno.mkdir(dir, { recursive: true });
  const lock = await Deno.open(`${dir}/cluster.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    return await f();
  } finally {
    lock.close();
  }
}

/** Brings the cluster up (idempotent: what runs is kept) and returns its admin kubeconfig's path. */
export function up(opts: UpOptions = {}): Promise<string> {
  return locked(() => upLocked(opts));
}

async function upLocked(opts: UpOptions): Promise<string> {
  const log = opts.log ?? ((l: string) => console.error(`cluster: ${l}`));
  for (const b of ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"]) {
    if (!(await exists(`${KUBE_BIN}/${b}`))) {
      throw new Error(`no ${KUBE_BIN}/${b}: run tests/cluster/setup.sh (it builds Kubernetes once)`);
    }
  }
  for (const c of ["etcd", "containerd", "runc", "socat", "umoci", "skopeo", "iptables"]) {
    if ((await run("sh", ["-c", `command -v ${c}`])).code !== 0) {
      throw new Error(`no ${c}: run tests/cluster/setup.sh`);
    }
  }
  for (const d of [CLUSTER_DIR, bin, logs, pids]) await Deno.mkdir(d, { recursive: true });
  await Deno.chmod(CLUSTER_DIR, 0o700);
  for (const b of ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"]) {
    // Hard links: a rebuild of the cache does not pull binaries from under a running node.
    if (!(await exists(`${bin}/${b}`))) {
      await Deno.link(`${KUBE_BIN}/${b}`, `${bin}/${b}`).catch(() =>
        Deno.copyFile(`${KUBE_BIN}/${b}`, `${bin}/${b}`)
      );
      await Deno.chmod(`${bin}/${b}`, 0o755);
    }
  }
  const fresh = !(await isUp());
  if (fresh) log(`starting a one-node cluster (state in ${CLUSTER_DIR})`);
  await makePki();
  await makeNetwork();
  await makeMountNamespace();
  await writeConfigs();
  await buildBusyboxImages(IMAGE_CACHE, PAUSE_IMAGE, BUSYBOX_IMAGE);

  await Deno.mkdir(`${CLUSTER_DIR}/etcd`, { recursive: true });
  await start("etcd", [
    "etcd",
    `--name=${NODE_NAME}`,
    `--data-dir=${CLUSTER_DIR}/etcd`,
    "--listen-client-urls=http://127.0.0.1:2379",
    "--advertise-client-urls=http://127.0.0.1:2379",
    "--listen-peer-urls=http://127.0.0.1:2380",
    "--initial-advertise-peer-urls=http://127.0.0.1:2380",
    `--initial-cluster=${NODE_NAME}=http://127.0.0.1:2380`,
    "--logger=zap",
    "--log-level=warn",
    "--unsafe-no-fsync",
  ]);
  await start("apiserver", [
    `${bin}/kube-apiserver`,
    "--etcd-servers=http://127.0.0.1:2379",
    "--bind-address=0.0.0.0",
    "--secure-port=6443",
    `--advertise-address=${NODE_IP}`,
    "--insecure-port=0",
    `--tls-cert-file=${pki}/apiserver.crt`,
    `--tls-private-key-file=${pki}/apiserver.key`,
    `--client-ca-file=${pki}/ca.crt`,
    `--kubelet-client-certificate=${pki}/apiserver-kubelet-client.crt`,
    `--kubelet-client-key=${pki}/apiserver-kubelet-client.key`,
    `--kubelet-certificate-authority=${pki}/ca.crt`,
    "--kubelet-preferred-address-types=InternalIP",
    `--service-account-key-file=${pki}/sa.pub`,
    `--service-account-signing-key-file=${pki}/sa.key`,
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    "--api-audiences=https://kubernetes.default.svc.cluster.local",
    "--authorization-mode=Node,RBAC",
    "--enable-admission-plugins=NodeRestriction",
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    "--allow-privileged=true",
    // No kube-proxy: the API server calls webhooks (bpfd's policy webhook) and aggregated APIs at their
    // Services' endpoints, not at the ClusterIP.
    "--enable-aggregator-routing=true",
    "--profiling=false",
    "--logtostderr=true",
    "--v=1",
  ]);
  // The host's door: 127.0.0.1:API_PORT → unix socket → the node's NODE_IP:6443.
  const sock = `${CLUSTER_DIR}/apiserver.sock`;
  if (!(await pidOf("relay-node"))) {
    await Deno.remove(sock).catch(() => {});
    await start("relay-node", ["socat", `UNIX-LISTEN:${sock},fork,mode=600`, `TCP:${NODE_IP}:6443`]);
  }
  await start(
    "relay-host",
    ["socat", `TCP-LISTEN:${API_PORT},bind=127.0.0.1,reuseaddr,fork`, `UNIX-CONNECT:${sock}`],
    true,
  );
  await waitUntil("the API server", 90, async () => (await kubectl(["get", "--raw", "/readyz"])).code === 0);
  const componentKubeconfig = (c: string) => [
    `--kubeconfig=${CLUSTER_DIR}/${c}.kubeconfig`,
    `--authentication-kubeconfig=${CLUSTER_DIR}/${c}.kubeconfig`,
    `--authorization-kubeconfig=${CLUSTER_DIR}/${c}.kubeconfig`,
    "--bind-address=127.0.0.1",
    "--port=0",
    "--leader-elect=false",
    "--logtostderr=true",
    "--v=1",
  ];
  await start("kcm", [
    `${bin}/kube-controller-manager`,
    ...componentKubeconfig("kcm"),
    "--use-service-account-credentials=true",
    `--service-account-private-key-file=${pki}/sa.key`,
    `--root-ca-file=${pki}/ca.crt`,
    `--cluster-signing-cert-file=${pki}/ca.crt`,
    `--cluster-signing-key-file=${pki}/ca.key`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    "--controllers=*,bootstrapsigner,tokencleaner",
  ]);
  await start("scheduler", [`${bin}/kube-scheduler`, ...componentKubeconfig("scheduler")]);
  await start("containerd", ["containerd", "--config", `${CLUSTER_DIR}/containerd/config.toml`]);
  await waitUntil("containerd", 30, async () => (await ctr(["version"])).code === 0);
  await importImage(`${IMAGE_CACHE}/pause.tar`, PAUSE_IMAGE);
  await importImage(`${IMAGE_CACHE}/busybox.tar`, BUSYBOX_IMAGE);
  const kubeletSince = Date.now();
  const kubeletStarted = await start("kubelet", [
    `${bin}/kubelet`,
    `--config=${CLUSTER_DIR}/kubelet.yaml`,
    `--kubeconfig=${CLUSTER_DIR}/kubelet.kubeconfig`,
    "--container-runtime=remote",
    "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
    `--hostname-override=${NODE_NAME}`,
    `--node-ip=${NODE_IP}`,
    `--root-dir=${CLUSTER_DIR}/kubelet`,
    `--cert-dir=${CLUSTER_DIR}/kubelet-pki`,
    "--logtostderr=true",
    "--v=1",
  ]);
  // A kubelet started now must have reported itself (a Ready left over from before does not count).
  await waitUntil(`node ${NODE_NAME} Ready`, 120, () => isUp(kubeletStarted ? kubeletSince : undefined));
  if (fresh) log(`node ${NODE_NAME} Ready (${NODE_IP}; traffic from namespace ${PEER_NETNS}, ${PEER_IP})`);
  if (opts.deploy) await deployBpfd(log);
  return KUBECONFIG;
}

/** bpfd's image (built if missing) loaded into the node, bpfd deployed with it, its pods waited for. */
export async function deployBpfd(log: (line: string) => void): Promise<void> {
  if (!(await exists(IMAGE_ARCHIVE))) {
    log(`building ${IMAGE_REF} (deno task image)`);
    await buildImage(IMAGE_REF, IMAGE_ARCHIVE);
  }
  const loaded = await importImage(IMAGE_ARCHIVE, IMAGE_REF);
  if (loaded) log(`loaded ${IMAGE_REF} into the node`);
  // Loaded here only: client-node's import prints a warning `up` alone has no reason to show.
  const k8s = await import("@kubernetes/client-node");
  const { deploy } = await import("./deploy.ts");
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(KUBECONFIG);
  const changes = await deploy({ kc, image: IMAGE_REF, imagePullPolicy: "Never" });
  const changed = changes.filter((c) => c.action !== "unchanged").length;
  log(`deployed bpfd (${changed} object(s) created or changed)`);
  const workloads = ["daemonset/bpfd-node", "deployment/bpfd-controller"];
  const rolled = changes.some((c) =>
    ["DaemonSet", "Deployment"].includes(c.kind) && c.action !== "unchanged"
  );
  if (loaded && !rolled) {
    // Same tag, new content: pods that run the old image are replaced.
    const r = await kubectl(["-n", "bpfd", "rollout", "restart", ...workloads]);
    if (r.code !== 0) throw new Error(`kubectl rollout restart: ${r.stderr.trim()}`);
    log("restarted bpfd's pods on the new image");
  }
  for (const w of workloads) {
    const r = await kubectl(["-n", "bpfd", "rollout", "status", w, "--timeout=180s"]);
    if (r.code !== 0) throw new Error(`${w} did not become ready: ${(r.stderr || r.stdout).trim()}`);
  }
  log("bpfd's node and controller pods are Ready");
}

/**
 * Stops the kubelet and starts it again, waiting until the node is Ready: a kubelet registers its Node
 * only when it starts, so this brings back a Node object that was deleted.
 */
export function restartKubelet(): Promise<void> {
  return locked(async () => {
    await stop("kubelet");
    await upLocked({ log: () => {} });
  });
}

/** Stops the API server (SIGTERM), for fault tests; `up` starts it again. */
export function stopApiserver(): Promise<void> {
  return locked(() => stop("apiserver"));
}

/** Stops everything `up` started and removes every trace: processes, mounts, namespaces, cgroups, state. */
export function down(): Promise<void> {
  return locked(downLocked);
}

async function downLocked(): Promise<void> {
  const nsAlive = (await exists(`${NS_DIR}/mnt`)) &&
    (await run("nsenter", [`--mount=${NS_DIR}/mnt`, "true"])).code === 0;
  await stop("kubelet");
  if (await pidOf("containerd")) {
    // Every container of this containerd, killed through it (the shims are their parents).
    const nss = (await ctr(["namespaces", "ls", "-q"])).stdout.split("\n").filter(Boolean);
    for (const ns of nss) {
      for (const t of (await ctr(["-n", ns, "tasks", "ls", "-q"])).stdout.split("\n").filter(Boolean)) {
        await ctr(["-n", ns, "tasks", "kill", "-s", "KILL", t]);
      }
    }
    await waitUntil("containers to end", 15, async () => {
      for (const ns of nss) {
        const ls = await ctr(["-n", ns, "tasks", "ls"]);
        if (/RUNNING|STOPPING/.test(ls.stdout)) return false;
      }
      return true;
    }).catch(() => {});
    for (const ns of nss) {
      for (const t of (await ctr(["-n", ns, "tasks", "ls", "-q"])).stdout.split("\n").filter(Boolean)) {
        await ctr(["-n", ns, "tasks", "delete", "-f", t]);
      }
    }
  }
  for (const p of [...PROCESSES].reverse()) if (p !== "kubelet") await stop(p);
  if (nsAlive) {
    // Shims that outlived containerd: their pid files are in the node's /run.
    const list = await run(IN_NODE[0], [
      `--mount=${NS_DIR}/mnt`,
      "--",
      "sh",
      "-c",
      "cat /run/containerd/io.containerd.runtime.v2.task/*/*/shim.pid 2>/dev/null; echo",
    ]);
    for (const pid of list.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      if (pid > 1) await killPid(pid, 0);
    }
  }
  if ((await run("mountpoint", ["-q", NS_DIR])).code === 0) {
    await run("umount", [`${NS_DIR}/mnt`]);
    await must("umount", [NS_DIR]);
  }
  await Deno.remove(NS_DIR, { recursive: true }).catch(() => {});
  for (const ns of [NODE_NETNS, PEER_NETNS]) {
    if (await exists(`/run/netns/${ns}`)) await must("ip", ["netns", "del", ns]);
  }
  // containerd (cgroupfs; kubelet with cgroupsPerQOS off) puts every container under /k8s.io/<id>.
  for (
    const h of [
      "cpu",
      "cpuacct",
      "cpuset",
      "memory",
      "devices",
      "freezer",
      "blkio",
      "pids",
      "systemd",
      "unified",
      "net_cls",
      "net_prio",
      "perf_event",
      "hugetlb",
      "rdma",
      "misc",
    ]
  ) {
    const dir = `/sys/fs/cgroup/${h}/k8s.io`;
    if (await exists(dir)) await run("find", [dir, "-depth", "-type", "d", "-exec", "rmdir", "{}", "+"]);
  }
  const made = await Deno.readTextFile(`${CLUSTER_DIR}/made-dirs`).catch(() => "");
  for (const d of made.split("\n").filter(Boolean)) await Deno.remove(d).catch(() => {});
  await Deno.remove(CLUSTER_DIR, { recursive: true }).catch(() => {});
}

/** Each process `up` starts, with its pid when it runs. */
export async function status(): Promise<Record<string, number | undefined>> {
  const s: Record<string, number | undefined> = {};
  for (const p of PROCESSES) s[p] = await pidOf(p);
  return s;
}

const USAGE = `usage: deno task cluster up [--deploy] | down | status

up        starts (or keeps) a one-node Kubernetes cluster on this machine: the node is network namespace
          ${NODE_NETNS} (eth0 ${NODE_IP}, its peer ${PEER_IP} in ${PEER_NETNS}); state in ${CLUSTER_DIR}.
          The last line is "export KUBECONFIG=..." for its admin.
  --deploy  also builds bpfd's image if missing (deno task image), loads it into the node and deploys bpfd
down      stops it and removes every trace
status    the cluster's processes and the node's readiness (exit 0 when up, 3 when not)
Needs root and tests/cluster/setup.sh (Debian packages; Kubernetes built once from Debian's source).`;

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { deploy: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  });
  const command = positionals[0];
  if (values.help || !["up", "down", "status"].includes(command)) {
    console.log(USAGE);
    Deno.exit(values.help ? 0 : 2);
  }
  try {
    if (command === "up") {
      const kubeconfig = await up({ deploy: values.deploy });
      console.log(`export KUBECONFIG=${kubeconfig}`);
    } else if (command === "down") {
      await down();
    } else {
      const s = await status();
      for (const [name, pid] of Object.entries(s)) {
        console.log(`${name.padEnd(11)} ${pid ? `running (pid ${pid})` : "stopped"}`);
      }
      const ready = await isUp();
      console.log(`node ${NODE_NAME}: ${ready ? "Ready" : "not Ready"}`);
      // Like systemctl's status: 0 when the cluster is up, 3 when it is not.
      if (!ready || Object.values(s).some((pid) => !pid)) Deno.exit(3);
    }
  } catch (e) {
    console.error(`cluster ${command}: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
