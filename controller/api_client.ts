/**
 * Writes to the API server with Deno's own fetch: one kept-alive (HTTP/2) connection with the
 * kubeconfig's CA, client certificate and Authorization header, instead of a request through the
 * Node.js compatibility layer each time. At 1,000 nodes the controller's writes are most of its work
 * (BENCHMARKS.md, "Controller at scale"). Errors carry the HTTP status as `code`, as client-node's do.
 *
 * @example
 * ```ts
 * const api = new ApiClient(kc);
 * await api.request("PUT", `/apis/bpfd.io/v1alpha1/bpfprograms/${name}/status`, obj);
 * ```
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import type * as https from "node:https";

/** An API server error: `code` is the HTTP status, `body` the Status object when there is one. */
export class ApiError extends Error {
  constructor(readonly code: number, message: string, readonly body?: unknown) {
    super(message);
    this.name = "ApiError";
  }
}

const text = (v: unknown) => v === undefined || v === null ? undefined : String(v);

/** Sends JSON requests to the current cluster of a KubeConfig. */
export class ApiClient {
  #client?: Deno.HttpClient;
  #tls = "";

  constructor(readonly kc: k8s.KubeConfig) {}

  /** Whether this client can talk to the cluster (Deno's fetch cannot skip TLS verification). */
  get usable(): boolean {
    const c = this.kc.getCurrentCluster();
    return !!c && !c.skipTLSVerify;
  }

  /** Sends `body` as JSON with `method` to `path`; resolves with the parsed answer. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new ApiError(0, "the kubeconfig names no current cluster");
    const opts: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    const tls = {
      caCerts: text(opts.ca) ? [text(opts.ca)!] : undefined,
      cert: text(opts.cert),
      key: text(opts.key),
    };
    const key = JSON.stringify(tls);
    if (!this.#client || key !== this.#tls) {
      this.#client?.close();
      this.#client = Deno.createHttpClient(tls);
      this.#tls = key;
    }
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: "application/json",
    };
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) headers[k] = String(v);
    const res = await fetch(`${cluster.server.replace(/\/$/, "")}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      client: this.#client,
    });
    const answer = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(answer);
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const message = (json as { message?: string } | undefined)?.message ?? answer.slice(0, 300);
      throw new ApiError(res.status, `${method} ${path}: ${res.status} ${message}`, json);
    }
    return json as T;
  }

  close(): void {
    this.#client?.close();
    this.#client = undefined;
  }
}
