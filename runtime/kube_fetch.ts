/**
 * A small Kubernetes API client on `fetch`, the node runtime's only one: credentials from a kubeconfig file
 * (token, token file or client certificate; the server's CA) or the pod's ServiceAccount, JSON requests
 * with a deadline, and the body of a watch. `@kubernetes/client-node` would add about 50 MiB to the runtime
 * (BENCHMARKS.md, "Node runtime in Kubernetes mode"); js-yaml is imported only to read a kubeconfig file.
 *
 * @example
 * ```ts
 * const kube = await KubeFetch.load("/etc/kubeconfig");
 * const res = await kube.request("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a");
 * ```
 * @module
 */

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** An answer of the API server that is not 2xx. */
export class KubeStatusError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = "KubeStatusError";
  }
}

/** Where the API server is and how to authenticate to it. */
export interface KubeAccess {
  server: string;
  caPem?: string;
  token?: () => Promise<string>;
  cert?: string;
  key?: string;
}

const fileOrData = async (file?: string, data?: string) =>
  data ? atob(data) : file ? await Deno.readTextFile(file) : undefined;

/** The access a kubeconfig file describes (its current context). */
export async function kubeconfigAccess(path: string): Promise<KubeAccess> {
  const { load } = await import("js-yaml");
  // deno-lint-ignore no-explicit-any
  const kc = load(await Deno.readTextFile(path)) as any;
  const context = kc?.contexts?.find((c: { name: string }) => c.name === kc["current-context"])?.context ??
    kc?.contexts?.[0]?.context;
  const cluster = kc?.clusters?.find((c: { name: string }) => c.name === context?.cluster)?.cluster;
  const user = kc?.users?.find((u: { name: string }) => u.name === context?.user)?.user ?? {};
  if (!cluster?.server) throw new Error(`${path}: no cluster for the current context`);
  if (user.exec || user["auth-provider"]) {
    throw new Error(`${path}: exec and auth-provider users are not supported`);
  }
  if (cluster["insecure-skip-tls-verify"]) {
    throw new Error(`${path}: insecure-skip-tls-verify is not supported`);
  }
  const tokenFile = user.tokenFile ?? user["token-file"];
  return {
    server: cluster.server,
    caPem: await fileOrData(cluster["certificate-authority"], cluster["certificate-authority-data"]),
    token: user.token
      ? () => Promise.resolve(user.token)
      : tokenFile
      ? async () => (await Deno.readTextFile(tokenFile)).trim()
      : undefined,
    cert: await fileOrData(user["client-certificate"], user["client-certificate-data"]),
    key: await fileOrData(user["client-key"], user["client-key-data"]),
  };
}

/** The pod's ServiceAccount (token re-read each minute: projected tokens rotate). */
export async function inClusterAccess(): Promise<KubeAccess> {
  const host = Deno.env.get("KUBERNETES_SERVICE_HOST"), port = Deno.env.get("KUBERNETES_SERVICE_PORT");
  if (!host || !port) {
    throw new Error("not in a cluster (no KUBERNETES_SERVICE_HOST) and no kubeconfig given");
  }
  let cached: { token: string; at: number } | undefined;
  return {
    server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    caPem: await Deno.readTextFile(`${SA_DIR}/ca.crt`),
    token: async () => {
      if (!cached || Date.now() - cached.at > 60_000) {
        cached = { token: (await Deno.readTextFile(`${SA_DIR}/token`)).trim(), at: Date.now() };
      }
      return cached.token;
    },
  };
}

/** Options of one request. */
export interface KubeRequestOptions {
  /** Deadline of the whole request (default 15 s). */
  timeoutMs?: number;
  /** Ends the request early. */
  signal?: AbortSignal;
}

/** ~/.kube/config when it exists (client-node's default after $KUBECONFIG). */
function homeKubeconfig(): string | undefined {
  const file = `${Deno.env.get("HOME") ?? ""}/.kube/config`;
  try {
    if (Deno.statSync(file).isFile) return file;
  } catch { /* no ~/.kube/config: in-cluster */ }
  return undefined;
}

/** JSON requests to one API server. */
export class KubeFetch {
  #client: Deno.HttpClient;

  constructor(readonly access: KubeAccess) {
    this.#client = Deno.createHttpClient({
      ...(access.caPem ? { caCerts: [access.caPem] } : {}),
      ...(access.cert && access.key ? { cert: access.cert, key: access.key } : {}),
    });
  }

  /** A client for `kubeconfig`, else $KUBECONFIG, else ~/.kube/config, else the pod's ServiceAccount. */
  static async load(kubeconfig?: string): Promise<KubeFetch> {
    const file = kubeconfig ?? Deno.env.get("KUBECONFIG") ?? homeKubeconfig();
    return new KubeFetch(file ? await kubeconfigAccess(file) : await inClusterAccess());
  }

  /** Sends `body` as JSON; the parsed answer, or a KubeStatusError with the server's message. */
  async request<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    opts: KubeRequestOptions = {},
  ): Promise<T> {
    const deadline = AbortSignal.timeout(opts.timeoutMs ?? 15_000);
    const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
    const res = await this.#fetch(method, path, body, signal);
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** The body of a GET as it arrives (a watch), or a KubeStatusError; only `signal` ends it. */
  async stream(path: string, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const res = await this.#fetch("GET", path, undefined, signal);
    if (!res.body) throw new Error(`GET ${path.split("?")[0]}: no body`);
    return res.body;
  }

  /** A 2xx answer, or a KubeStatusError with the server's message. */
  async #fetch(method: string, path: string, body: unknown, signal: AbortSignal): Promise<Response> {
    const token = await this.access.token?.();
    const res = await fetch(`${this.access.server}${path}`, {
      method,
      client: this.#client,
      headers: {
        accept: "application/json",
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    if (res.ok) return res;
    const text = await res.text();
    let message = text.slice(0, 500);
    try {
      message = JSON.parse(text).message ?? message;
    } catch { /* not a Status object: keep the text */ }
    throw new KubeStatusError(res.status, `${method} ${path.split("?")[0]}: ${res.status} ${message}`);
  }

  /** Closes the connections. */
  close(): void {
    this.#client.close();
  }
}
