/**
 * How the controller calls a node runtime's `reconcile` function: `POST /v1/functions/reconcile` at the
 * node's address with the BpfProgram's desired state as JSON. A node that answers with an error gives its
 * message back (`NodeError.status` is the HTTP status); one that does not answer is status 0.
 *
 * @module
 */
import type { ReconcileInput, ReconcileOutput } from "../crds/reconcile.ts";

/** A node as the controller sees it. */
export interface NodeInfo {
  name: string;
  labels: Record<string, string>;
  /** host:port of the node runtime, or a full URL (http://..., unix:/path/to/socket). */
  address?: string;
}

export class NodeError extends Error {
  constructor(readonly status: number, message: string, readonly code?: string) {
    super(message);
    this.name = "NodeError";
  }
}

/** Calls nodes' functions. */
export interface NodeCaller {
  reconcile(node: NodeInfo, input: ReconcileInput): Promise<ReconcileOutput>;
}

/** How to reach node runtimes whose TCP API is authenticated (runtime/auth). */
export interface NodeAuthOptions {
  /** PEM CA certificates the node runtimes' serving certificates are signed by: host:port means https. */
  caCerts?: string[];
  /** The bearer token sent with a call to `node` (asked each time: tokens are per node and rotate). */
  token?: (node: NodeInfo) => string | undefined | Promise<string | undefined>;
}

/** Calls node runtimes over HTTP (TCP host:port or a unix socket). */
export class HttpNodeCaller implements NodeCaller {
  #clients = new Map<string, Deno.HttpClient>();
  #tls?: Deno.HttpClient;
  constructor(
    public timeoutMs = 30_000,
    readonly headers: Record<string, string> = {},
    readonly auth: NodeAuthOptions = {},
  ) {}

  async reconcile(node: NodeInfo, input: ReconcileInput): Promise<ReconcileOutput> {
    return await this.call(node, "reconcile", input) as ReconcileOutput;
  }

  async call(node: NodeInfo, fn: string, input: unknown): Promise<unknown> {
    if (!node.address) {
      throw new NodeError(0, `node ${node.name} has no address (no InternalIP, no bpfd.io/address)`);
    }
    let url: string;
    let client: Deno.HttpClient | undefined;
    if (node.address.startsWith("unix:")) {
      const path = node.address.slice(5);
      client = this.#clients.get(path);
      if (!client) {
        client = Deno.createHttpClient({ proxy: { transport: "unix", path } });
        this.#clients.set(path, client);
      }
      url = `http://bpfd/v1/functions/${fn}`;
    } else {
      const scheme = this.auth.caCerts?.length ? "https" : "http";
      const base = /^https?:\/\//.test(node.address) ? node.address : `${scheme}://${node.address}`;
      url = `${base.replace(/\/$/, "")}/v1/functions/${fn}`;
      if (url.startsWith("https:") && this.auth.caCerts?.length) {
        client = this.#tls ??= Deno.createHttpClient({ caCerts: this.auth.caCerts });
      }
    }
    // Credentials only travel encrypted: never over plain http.
    let token: string | undefined;
    try {
      token = url.startsWith("https:") ? await this.auth.token?.(node) : undefined;
    } catch (err) {
      throw new NodeError(
        0,
        `no credentials for the node runtime of ${node.name}: ${(err as Error).message}`,
      );
    }
    let res: Response;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...this.headers,
        },
        body: JSON.stringify(input),
        signal: AbortSignal.timeout(this.timeoutMs),
        ...(client ? { client } : {}),
      });
    } catch (err) {
      const why = err instanceof DOMException && err.name === "TimeoutError"
        ? `no answer within ${this.timeoutMs} ms`
        : (err as Error).message;
      throw new NodeError(0, `node runtime of ${node.name} at ${node.address} unreachable: ${why}`);
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!res.ok) {
      const e = (body as { error?: { message?: string; code?: string } } | undefined)?.error;
      throw new NodeError(res.status, e?.message ?? `HTTP ${res.status}: ${text.slice(0, 200)}`, e?.code);
    }
    return body;
  }

  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
    this.#tls?.close();
    this.#tls = undefined;
  }
}
