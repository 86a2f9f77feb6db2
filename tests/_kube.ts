// Test harness: a real etcd + kube-apiserver on 127.0.0.1, started per test file.
//
// The binaries come from tests/k8s/setup.sh (Debian's etcd-server, and kube-apiserver 1.20 built from
// Debian's `kubernetes` source package, cached under /var/cache/bpfd/kube). startKube() makes a temp dir
// with a self-made CA and serving certificate, a token file (an admin in system:masters and a few plain
// users), service-account signing keys, starts etcd and kube-apiserver on free loopback ports with RBAC,
// waits until /readyz answers, and returns paths, tokens and a stop() that ends only the processes it
// started and removes its temp dir. The processes get SIGKILL if the test process dies (setpriv
// --pdeathsig), so a crashed test leaves nothing running.

import * as k8s from "@kubernetes/client-node";
import { issueNodeCertificate } from "../deploy/tls.ts";

export const KUBE_CACHE = Deno.env.get("BPFD_KUBE_CACHE") ?? "/var/cache/bpfd/kube";
export const KUBE_APISERVER = `${KUBE_CACHE}/bin/kube-apiserver`;
export const KUBECTL = `${KUBE_CACHE}/bin/kubectl`;

export interface KubeUser {
  name: string;
  token: string;
  groups: string[];
}

export interface Kube {
  /** https://127.0.0.1:<port> */
  server: string;
  dir: string;
  caFile: string;
  caPem: string;
  admin: KubeUser;
  /** Plain users without any RBAC binding: alice, bob, carol. */
  users: Record<string, KubeUser>;
  /** Path of a kubeconfig file for the admin (or for the named user). */
  kubeconfig(user?: string): string;
  /** A @kubernetes/client-node KubeConfig for the admin (or for the named user). */
  kubeConfig(user?: string): k8s.KubeConfig;
  /** Runs kubectl against this API server as the admin (or `opts.user`). */
  kubectl(args: string[], opts?: { stdin?: string; user?: string }): Promise<CmdResult>;
  /** Log files of etcd and kube-apiserver, for failure messages. */
  logs: { etcd: string; apiserver: string };
  stop(): Promise<void>;
}

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function run(cmd: string, args: string[], opts: { stdin?: string; cwd?: string } = {}) {
  const child = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function must(cmd: string, args: string[], opts: { stdin?: string; cwd?: string } = {}) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs tests/k8s/setup.sh when a binary is missing (it is a no-op when everything is cached). */
export async function ensureKubeBinaries(): Promise<void> {
  if (await exists(KUBE_APISERVER) && await exists(KUBECTL) && await exists("/usr/bin/etcd")) return;
  const script = new URL("./k8s/setup.sh", import.meta.url).pathname;
  const r = await new Deno.Command("bash", { args: [script], stdout: "inherit", stderr: "inherit" }).output();
  if (r.code !== 0) throw new Error(`tests/k8s/setup.sh failed with ${r.code}`);
}

/** The API server's CA and serving certificate (deploy's own issuer), and its service-account key pair. */
async function makePki(dir: string): Promise<void> {
  const { ca, cert, key } = await issueNodeCertificate(
    ["127.0.0.1", "10.0.0.1"],
    ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
    2,
  );
  await Deno.writeTextFile(`${dir}/ca.crt`, ca);
  await Deno.writeTextFile(`${dir}/server.crt`, cert);
  await Deno.writeTextFile(`${dir}/server.key`, key);
  await must("openssl", ["genrsa", "-out", `${dir}/sa.key`, "2048"]);
  await must("openssl", ["rsa", "-in", `${dir}/sa.key`, "-pubout", "-out", `${dir}/sa.pub`]);
}

function randomToken(): string {
  const b = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

interface Proc {
  name: string;
  child: Deno.ChildProcess;
  log: Deno.FsFile;
  exited: boolean;
}

async function startProc(name: string, cmd: string, args: string[], logPath: string): Promise<Proc> {
  const log = await Deno.open(logPath, { write: true, create: true, truncate: true });
  // setpriv --pdeathsig: the kernel kills the child if this (test) process dies first.
  const child = new Deno.Command("setpriv", {
    args: ["--pdeathsig", "KILL", "--", cmd, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const p: Proc = { name, child, log, exited: false };
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) {
      try {
        await log.write(chunk);
      } catch { /* log closed */ }
    }
  };
  pump(child.stdout);
  pump(child.stderr);
  child.status.then(() => p.exited = true);
  return p;
}

async function stopProc(p: Proc): Promise<void> {
  if (!p.exited) {
    try {
      p.child.kill("SIGTERM");
    } catch { /* already gone */ }
    const t = setTimeout(() => {
      try {
        if (!p.exited) p.child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5000);
    await p.child.status;
    clearTimeout(t);
  } else {
    await p.child.status;
  }
  // Let the pumps drain, then close the log.
  await new Promise((r) => setTimeout(r, 10));
  try {
    p.log.close();
  } catch { /* closed */ }
}

async function tail(path: string, lines = 30): Promise<string> {
  try {
    const t = await Deno.readTextFile(path);
    return t.split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

function kubeconfigYaml(server: string, caPem: string, user: string, token: string): string {
  const ca = btoa(caPem);
  return `apiVersion: v1
kind: Config
clusters:
- name: bpfd-test
  cluster:
    server: ${server}
    certificate-authority-data: ${ca}
users:
- name: ${user}
  user:
    token: ${token}
contexts:
- name: ${user}@bpfd-test
  context:
    cluster: bpfd-test
    user: ${user}
current-context: ${user}@bpfd-test
`;
}

export interface StartKubeOptions {
  /** Extra kube-apiserver flags. */
  apiserverArgs?: string[];
  /** Seconds to wait for readiness (default 90). */
  readyTimeout?: number;
}

export async function startKube(opts: StartKubeOptions = {}): Promise<Kube> {
  await ensureKubeBinaries();
  // Prefer tmpfs for etcd's data (fsync-heavy); fall back to /tmp.
  const base = (await exists("/dev/shm")) ? "/dev/shm" : undefined;
  const dir = await Deno.makeTempDir({ prefix: "bpfd-kube-", dir: base });
  const procs: Proc[] = [];
  const stop = async () => {
    for (const p of procs.reverse()) await stopProc(p);
    procs.length = 0;
    // BPFD_KUBE_KEEP=1 keeps the temp dir (logs, certificates) for debugging.
    if (!Deno.env.get("BPFD_KUBE_KEEP")) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await makePki(dir);
    const caPem = await Deno.readTextFile(`${dir}/ca.crt`);
    const admin: KubeUser = { name: "admin", token: randomToken(), groups: ["system:masters"] };
    const users: Record<string, KubeUser> = {};
    for (const n of ["alice", "bob", "carol"]) {
      users[n] = { name: n, token: randomToken(), groups: ["system:authenticated"] };
    }
    const all = [admin, ...Object.values(users)];
    await Deno.writeTextFile(
      `${dir}/tokens.csv`,
      all.map((u, i) => `${u.token},${u.name},uid-${i},"${u.groups.join(",")}"`).join("\n") + "\n",
    );

    const etcdPort = freePort();
    const peerPort = freePort();
    const apiPort = freePort();
    const logs = { etcd: `${dir}/etcd.log`, apiserver: `${dir}/apiserver.log` };
    procs.push(
      await startProc("etcd", "etcd", [
        "--name=bpfd-test",
        `--data-dir=${dir}/etcd`,
        `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
        `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-cluster=bpfd-test=http://127.0.0.1:${peerPort}`,
        "--logger=zap",
        "--log-level=warn",
      ], logs.etcd),
    );
    procs.push(
      await startProc("kube-apiserver", KUBE_APISERVER, [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        `--secure-port=${apiPort}`,
        "--insecure-port=0",
        `--cert-dir=${dir}/certs`,
        `--tls-cert-file=${dir}/server.crt`,
        `--tls-private-key-file=${dir}/server.key`,
        `--client-ca-file=${dir}/ca.crt`,
        `--token-auth-file=${dir}/tokens.csv`,
        `--service-account-key-file=${dir}/sa.pub`,
        `--service-account-signing-key-file=${dir}/sa.key`,
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--api-audiences=https://kubernetes.default.svc.cluster.local",
        "--authorization-mode=RBAC",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--allow-privileged=true",
        "--profiling=false",
        "--endpoint-reconciler-type=none",
        "--logtostderr=true",
        "--v=1",
        ...(opts.apiserverArgs ?? []),
      ], logs.apiserver),
    );

    const server = `https://127.0.0.1:${apiPort}`;
    const client = Deno.createHttpClient({ caCerts: [caPem] });
    const deadline = Date.now() + (opts.readyTimeout ?? 90) * 1000;
    let last = "";
    try {
      while (true) {
        for (const p of procs) {
          if (p.exited) {
            const path = p.name === "etcd" ? logs.etcd : logs.apiserver;
            throw new Error(`${p.name} exited during start-up:\n${await tail(path)}`);
          }
        }
        try {
          const r = await fetch(`${server}/readyz`, {
            client,
            headers: { authorization: `Bearer ${admin.token}` },
            signal: AbortSignal.timeout(5000),
          });
          last = `${r.status} ${await r.text()}`;
          if (r.status === 200) {
            // Ready also means bootstrapped: the namespace "default" exists (made just after /readyz).
            const ns = await fetch(`${server}/api/v1/namespaces/default`, {
              client,
              headers: { authorization: `Bearer ${admin.token}` },
              signal: AbortSignal.timeout(5000),
            });
            last = `namespace default: ${ns.status} ${await ns.text()}`;
            if (ns.status === 200) break;
          }
        } catch (e) {
          last = String(e);
        }
        if (Date.now() > deadline) {
          throw new Error(
            `kube-apiserver not ready after ${opts.readyTimeout ?? 90}s: ${last}\n` +
              (await tail(logs.apiserver)),
          );
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      client.close();
    }

    const files = new Map<string, string>();
    const kubeconfig = (user = "admin") => {
      let f = files.get(user);
      if (f) return f;
      const u = user === "admin" ? admin : users[user];
      if (!u) throw new Error(`unknown test user ${user}`);
      f = `${dir}/kubeconfig-${user}.yaml`;
      Deno.writeTextFileSync(f, kubeconfigYaml(server, caPem, user, u.token));
      files.set(user, f);
      return f;
    };
    const kubeConfig = (user = "admin") => {
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(kubeconfig(user));
      return kc;
    };
    const kubectl = (args: string[], o: { stdin?: string; user?: string } = {}) =>
      run(KUBECTL, ["--kubeconfig", kubeconfig(o.user), ...args], { stdin: o.stdin });
    kubeconfig("admin");
    return {
      server,
      dir,
      caFile: `${dir}/ca.crt`,
      caPem,
      admin,
      users,
      kubeconfig,
      kubeConfig,
      kubectl,
      logs,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes; returns the value. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 30000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (true) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${lastErr}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
