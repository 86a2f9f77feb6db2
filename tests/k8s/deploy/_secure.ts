/**
 * Helpers for the authenticated-node tests: a CA and a serving certificate for node runtimes, real
 * ServiceAccount tokens (TokenRequest), kubeconfigs for them, JWTs re-signed to be expired or forged, and
 * a node runtime process with TLS and Kubernetes authentication on 127.0.0.1. Everything lives in the
 * directory the caller gives; `SecureRuntime.destroy()` unloads what is left, stops the process it
 * started, unmounts its bpffs.
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { issueNodeCertificate } from "../../../deploy/tls.ts";
import { freePort, type Kube, waitFor } from "../../_kube.ts";
import { RUNTIME_DENO_ARGS } from "../../../runtime/launch.ts";
import { nodeAudience } from "../../../model/names.ts";

const root = new URL("../../..", import.meta.url).pathname;
// deno-lint-ignore no-explicit-any
export type Json = any;

async function must(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (out.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

/**
 * A CA (`ca.crt`) and a serving certificate for 127.0.0.1 signed by it (`tls.crt`, `tls.key`) in `dir`,
 * made the way `deno task deploy` makes the node certificate.
 */
export async function makeNodeTls(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const issued = await issueNodeCertificate(["127.0.0.1"], ["localhost"], 1);
  const paths = { ca: `${dir}/ca.crt`, cert: `${dir}/tls.crt`, key: `${dir}/tls.key` };
  for (const k of ["ca", "cert", "key"] as const) await Deno.writeTextFile(paths[k], issued[k]);
  return paths;
}

/**
 * A real token of ServiceAccount `<namespace>/<name>` from the TokenRequest API, for the API server or
 * (`audience`) another audience, optionally bound to a pod (`pod`: name, in the same namespace).
 */
export async function serviceAccountToken(
  kube: Kube,
  name: string,
  opts: { namespace?: string; audience?: string; pod?: string } = {},
): Promise<string> {
  const namespace = opts.namespace ?? "bpfd";
  const core = kube.kubeConfig().makeApiClient(k8s.CoreV1Api);
  const pod = opts.pod ? await core.readNamespacedPod({ name: opts.pod, namespace }) : undefined;
  const r = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: {
      spec: {
        audiences: [opts.audience ?? "https://kubernetes.default.svc.cluster.local"],
        expirationSeconds: 3600,
        ...(pod
          ? { boundObjectRef: { kind: "Pod", apiVersion: "v1", name: opts.pod, uid: pod.metadata!.uid } }
          : {}),
      },
    },
  });
  return r.status!.token;
}

/** A token of ServiceAccount `<namespace>/<name>` for node `node`'s audience (what its runtime accepts). */
export function nodeToken(kube: Kube, name: string, node: string, namespace = "bpfd"): Promise<string> {
  return serviceAccountToken(kube, name, { namespace, audience: nodeAudience(node) });
}

/** A kubeconfig file for `token` on `kube`'s API server. */
export async function tokenKubeconfig(kube: Kube, file: string, token: string): Promise<string> {
  await Deno.writeTextFile(
    file,
    `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: ${kube.server}
    certificate-authority-data: ${btoa(kube.caPem)}
users:
- name: u
  user:
    token: ${token}
contexts:
- name: u@c
  context: {cluster: c, user: u}
current-context: u@c
`,
  );
  return file;
}

const b64url = (b: Uint8Array) =>
  btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const fromB64url = (s: string) =>
  Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

async function importPkcs8(pem: string): Promise<CryptoKey> {
  const der = Uint8Array.from(
    atob(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "")),
    (c) => c.charCodeAt(0),
  );
  return await crypto.subtle.importKey("pkcs8", der, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, [
    "sign",
  ]);
}

/** `token` with its claims changed by `edit`, signed RS256 with the PKCS#8 PEM key `keyPem`. */
export async function resign(token: string, keyPem: string, edit: (claims: Json) => void): Promise<string> {
  const [header, payload] = token.split(".");
  const claims = JSON.parse(new TextDecoder().decode(fromB64url(payload)));
  edit(claims);
  const body = `${header}.${b64url(new TextEncoder().encode(JSON.stringify(claims)))}`;
  const sig = await crypto.subtle.sign(
    "RSASSA-PKCS1-v1_5",
    await importPkcs8(keyPem),
    new TextEncoder().encode(body),
  );
  return `${body}.${b64url(new Uint8Array(sig))}`;
}

/** A PKCS#8 RSA key the cluster has never seen. */
export async function strangerKey(dir: string): Promise<string> {
  await must(
    "openssl",
    "genpkey",
    "-algorithm",
    "RSA",
    "-pkeyopt",
    "rsa_keygen_bits:2048",
    "-out",
    `${dir}/stranger.key`,
  );
  return await Deno.readTextFile(`${dir}/stranger.key`);
}

/** A node runtime process on 127.0.0.1:<port> with TLS and Kubernetes authentication. */
export class SecureRuntime {
  child?: Deno.ChildProcess;
  readonly port = freePort();
  readonly client: Deno.HttpClient;

  private constructor(
    readonly dir: string,
    readonly caPem: string,
    readonly logFile: string,
    readonly host: string,
  ) {
    this.client = Deno.createHttpClient({ caCerts: [caPem] });
  }

  get url(): string {
    return `https://${this.host}:${this.port}`;
  }

  /**
   * Starts it with `auth` as the config's `auth`; state and bpffs under `dir/state`. It listens on
   * `opts.host` (default 127.0.0.1); with `opts.request` it asks the cluster for its certificate (CSR API),
   * written to `tls.cert` and `tls.key`; `opts.checkout` runs the runtime of another checkout of bpfd.
   */
  static async start(
    dir: string,
    tls: { ca: string; cert: string; key: string },
    auth: Record<string, unknown>,
    opts: { host?: string; request?: boolean; config?: Record<string, unknown>; checkout?: string } = {},
  ): Promise<SecureRuntime> {
    const host = opts.host ?? "127.0.0.1";
    const rt = new SecureRuntime(dir, await Deno.readTextFile(tls.ca), `${dir}/runtime.log`, host);
    const config = {
      stateDir: `${dir}/state`,
      bpffs: `${dir}/state/fs`,
      socket: "",
      listen: `${host}:${rt.port}`,
      logLevel: "info",
      tls: { certFile: tls.cert, keyFile: tls.key, request: opts.request ?? false },
      auth,
      ...opts.config,
    };
    await Deno.writeTextFile(`${dir}/node.json`, JSON.stringify(config));
    rt.child = new Deno.Command("setpriv", {
      args: [
        "--pdeathsig",
        "KILL",
        "--",
        "sh",
        "-c",
        `exec "$@" >>'${rt.logFile}' 2>&1`,
        "sh",
        Deno.execPath(),
        ...RUNTIME_DENO_ARGS,
        `${opts.checkout ?? root}runtime/main.ts`,
        "--config",
        `${dir}/node.json`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await waitFor(
        "secure runtime up",
        async () => {
          const r = await fetch(`${rt.url}/healthz`, {
            client: rt.client,
            signal: AbortSignal.timeout(1000),
          });
          await r.body?.cancel();
          return r.ok;
        },
        30000,
        100,
      );
    } catch (e) {
      await rt.destroy(undefined);
      throw new Error(`${(e as Error).message}\n${await Deno.readTextFile(rt.logFile).catch(() => "")}`);
    }
    return rt;
  }

  /** POSTs a function call with `token` (none: no Authorization header). */
  async call(fn: string, input: unknown, token?: string): Promise<{ status: number; body: Json }> {
    const r = await fetch(`${this.url}/v1/functions/${fn}`, {
      method: "POST",
      body: JSON.stringify(input),
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      client: this.client,
      signal: AbortSignal.timeout(20000),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined };
  }

  /** Unloads what it manages (with `adminToken`), stops the process, unmounts the bpffs. */
  async destroy(adminToken: string | undefined): Promise<void> {
    if (this.child && adminToken) {
      try {
        const l = await this.call("list", {}, adminToken);
        for (const p of (l.body?.programs ?? []).reverse()) {
          await this.call("unload", { programId: p.id }, adminToken);
        }
      } catch { /* the unmount below drops the pins anyway */ }
    }
    if (this.child) {
      try {
        this.child.kill("SIGTERM");
      } catch { /* gone */ }
      await this.child.status;
      this.child = undefined;
    }
    await new Deno.Command("umount", { args: [`${this.dir}/state/fs`], stderr: "null" }).output();
    this.client.close();
  }
}
