/**
 * The controller's view of a cluster, through `@kubernetes/client-node`: informers (list + watch) for
 * BpfProgramConfigs, BpfPrograms, Nodes and the `bpfd-config` ConfigMap, and the writes the reconciler
 * makes (create/replace/delete BpfPrograms, replace status subresources, Events). Every write is
 * optimistic (the resourceVersion of what was read); what a write returns is kept as the freshest copy
 * until the watch catches up, so the next reconcile does not act on a stale cache.
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { API_VERSION, type BpfProgram, type BpfProgramConfig, GROUP, VERSION } from "../crds/schema.ts";
import { Informer } from "../lib/informer.ts";
import type { Logger } from "../lib/log.ts";
import type { NodeInfo } from "./node_client.ts";
import { ApiClient } from "./api_client.ts";
import { dockerConfigOf, PullSecretError, type SecretRef } from "./pull_secrets.ts";
import type { EventSpec, Store } from "./reconciler.ts";
import { CONFIGMAP_NAME } from "./settings.ts";

/** The annotation that overrides a Node's runtime address (host:port or URL). */
export const ADDRESS_ANNOTATION = "bpfd.io/address";

type Obj = k8s.KubernetesObject & { metadata: k8s.V1ObjectMeta };

function rvNewer(a: string | undefined, b: string | undefined): boolean {
  try {
    return BigInt(a ?? "0") > BigInt(b ?? "0");
  } catch {
    return false;
  }
}

/** One watched collection with a freshness overlay for our own writes. */
class Collection<T extends Obj> {
  readonly informer: Informer<T>;
  #overlay = new Map<string, { obj: T | null; at: number }>();
  /** resourceVersions our own writes produced, by name (their watch events are not news). */
  #ours = new Map<string, Set<string>>();
  /** Writes in flight by name, and the watch events that arrived meanwhile. */
  #writing = new Map<string, number>();
  #held = new Map<string, T[]>();
  #seen: (obj: T, deleted: boolean) => void = () => {};

  constructor(
    readonly what: string,
    kc: k8s.KubeConfig,
    path: string,
    list: () => Promise<k8s.KubernetesListObject<T>>,
    onChange: (obj: T, deleted: boolean) => void,
    log: () => Logger,
    fieldSelector?: string,
    /** For a namespaced collection: the namespace its objects are in. */
    readonly namespace?: string,
  ) {
    this.informer = new Informer<T>(k8s, kc, path, list, {
      fieldSelector,
      onError: (err) =>
        log().warn("watch failed; restarting", { what, error: String((err as Error)?.message ?? err) }),
    });
    const seen = (obj: T, deleted: boolean) => {
      const name = obj.metadata.name!;
      // The echo of a write still in flight can arrive before its answer: decide once the answer is in.
      if (!deleted && this.#writing.has(name)) {
        this.#held.set(name, [...this.#held.get(name) ?? [], obj]);
        return;
      }
      const o = this.#overlay.get(name);
      if (
        o && (deleted || !o.obj || !rvNewer(o.obj.metadata.resourceVersion, obj.metadata.resourceVersion))
      ) {
        this.#overlay.delete(name);
      }
      // The echo of our own write: the reconcile that made it already knows (controller-runtime would
      // reconcile again; with N nodes that is N more node calls per status write).
      const ours = this.#ours.get(name);
      if (!deleted && ours?.delete(obj.metadata.resourceVersion ?? "")) {
        if (ours.size === 0) this.#ours.delete(name);
        return;
      }
      if (deleted) this.#ours.delete(name);
      onChange(obj, deleted);
    };
    this.#seen = seen;
    this.informer.cache.on("add", (o) => seen(o, false));
    this.informer.cache.on("update", (o) => seen(o, false));
    this.informer.cache.on("delete", (o) => seen(o, true));
  }

  start(): Promise<void> {
    return this.informer.start();
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }

  get(name: string): T | undefined {
    const cached = this.informer.cache.get(name, this.namespace);
    const o = this.#overlay.get(name);
    if (!o) return cached;
    if (Date.now() - o.at > 30_000) {
      this.#overlay.delete(name);
      return cached;
    }
    if (o.obj === null) return undefined;
    return cached && !rvNewer(o.obj.metadata.resourceVersion, cached.metadata.resourceVersion)
      ? cached
      : o.obj;
  }

  list(): T[] {
    const names = new Set([
      ...this.informer.cache.list().map((o) => o.metadata.name!),
      ...this.#overlay.keys(),
    ]);
    return [...names].map((n) => this.get(n)).filter((o): o is T => o !== undefined);
  }

  /** Runs a write of object `name`; its own watch event is recognised even when it comes first. */
  async write(name: string, fn: () => Promise<T>): Promise<T> {
    this.#writing.set(name, (this.#writing.get(name) ?? 0) + 1);
    try {
      return this.wrote(await fn());
    } finally {
      const left = this.#writing.get(name)! - 1;
      if (left > 0) this.#writing.set(name, left);
      else {
        this.#writing.delete(name);
        const held = this.#held.get(name) ?? [];
        this.#held.delete(name);
        for (const obj of held) this.#seen(obj, false);
      }
    }
  }

  wrote(obj: T): T {
    const name = obj.metadata.name!;
    if (obj.metadata.deletionTimestamp && !obj.metadata.finalizers?.length) {
      // The write let a deleting object go: it is gone (its DELETED event may already have passed).
      this.deleted(name);
      return obj;
    }
    this.#overlay.set(name, { obj, at: Date.now() });
    const ours = this.#ours.get(name) ?? new Set<string>();
    ours.add(obj.metadata.resourceVersion ?? "");
    if (ours.size > 16) ours.delete(ours.values().next().value!);
    this.#ours.set(name, ours);
    return obj;
  }

  deleted(name: string): void {
    this.#overlay.set(name, { obj: null, at: Date.now() });
  }
}

export interface KubeStoreOptions {
  kc: k8s.KubeConfig;
  /** The namespace of the bpfd-config ConfigMap and the leader-election Lease. */
  namespace: string;
  /** The namespace Events about cluster-scoped objects go to. */
  eventNamespace?: string;
  /** The node runtimes' port, for Nodes without the address annotation. */
  nodePort: () => number;
  /** This controller's identity in Events. */
  identity: string;
  log: () => Logger;
}

export interface KubeHandlers {
  config(name: string): void;
  program(bp: BpfProgram): void;
  node(name: string): void;
  settings(data: Record<string, string> | undefined): void;
}

/** A node's runtime address: its annotation, or its InternalIP (then ExternalIP, Hostname) and the port. */
export function nodeAddress(node: k8s.V1Node, port: number): string | undefined {
  const ann = node.metadata?.annotations?.[ADDRESS_ANNOTATION];
  if (ann) return ann;
  const addrs = node.status?.addresses ?? [];
  const pick = ["InternalIP", "ExternalIP", "Hostname"].map((t) => addrs.find((a) => a.type === t)).find((
    a,
  ) => a);
  if (!pick) return undefined;
  return pick.address.includes(":") ? `[${pick.address}]:${port}` : `${pick.address}:${port}`;
}

export class KubeStore implements Store {
  readonly custom: k8s.CustomObjectsApi;
  readonly core: k8s.CoreV1Api;
  #configs: Collection<Obj>;
  #programs: Collection<Obj>;
  #nodes: Collection<Obj>;
  #configMap: Collection<Obj>;
  /** API writes made, by verb and resource (for benchmarks and tests). */
  readonly writes = new Map<string, number>();

  /** Deno's fetch for the BpfProgram and status writes (undefined: client-node, e.g. skipTLSVerify). */
  #api?: ApiClient;

  constructor(readonly opts: KubeStoreOptions, handlers: KubeHandlers) {
    const { kc, namespace } = opts;
    const api = new ApiClient(kc);
    if (api.usable) this.#api = api;
    this.custom = kc.makeApiClient(k8s.CustomObjectsApi);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    const crdList = (plural: string) => () =>
      this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural }) as Promise<
        k8s.KubernetesListObject<Obj>
      >;
    this.#configs = new Collection(
      "bpfprogramconfigs",
      kc,
      `/apis/${GROUP}/${VERSION}/bpfprogramconfigs`,
      crdList("bpfprogramconfigs"),
      (o) => handlers.config(o.metadata.name!),
      opts.log,
    );
    this.#programs = new Collection(
      "bpfprograms",
      kc,
      `/apis/${GROUP}/${VERSION}/bpfprograms`,
      crdList("bpfprograms"),
      (o) => handlers.program(o as unknown as BpfProgram),
      opts.log,
    );
    this.#nodes = new Collection(
      "nodes",
      kc,
      "/api/v1/nodes",
      () => this.core.listNode() as Promise<k8s.KubernetesListObject<Obj>>,
      (o) => handlers.node(o.metadata.name!),
      opts.log,
    );
    this.#configMap = new Collection(
      "configmap",
      kc,
      `/api/v1/namespaces/${namespace}/configmaps`,
      () =>
        this.core.listNamespacedConfigMap({
          namespace,
          fieldSelector: `metadata.name=${CONFIGMAP_NAME}`,
        }) as Promise<k8s.KubernetesListObject<Obj>>,
      (o, deleted) => handlers.settings(deleted ? undefined : (o as k8s.V1ConfigMap).data ?? {}),
      opts.log,
      `metadata.name=${CONFIGMAP_NAME}`,
      namespace,
    );
  }

  /** Lists everything and starts the watches; resolves once the caches hold the first lists. */
  async start(): Promise<void> {
    await Promise.all([this.#configMap, this.#nodes, this.#configs, this.#programs].map((c) => c.start()));
  }

  async stop(): Promise<void> {
    await Promise.all([this.#configMap, this.#nodes, this.#configs, this.#programs].map((c) => c.stop()));
    this.#api?.close();
  }

  /** The bpfd-config data as the cache has it (undefined: no such ConfigMap). */
  settingsData(): Record<string, string> | undefined {
    const cm = this.#configMap.get(CONFIGMAP_NAME) as k8s.V1ConfigMap | undefined;
    return cm ? cm.data ?? {} : undefined;
  }

  configs(): BpfProgramConfig[] {
    return this.#configs.list() as unknown as BpfProgramConfig[];
  }
  config(name: string): BpfProgramConfig | undefined {
    return this.#configs.get(name) as unknown as BpfProgramConfig | undefined;
  }
  programs(): BpfProgram[] {
    return this.#programs.list() as unknown as BpfProgram[];
  }
  program(name: string): BpfProgram | undefined {
    return this.#programs.get(name) as unknown as BpfProgram | undefined;
  }
  #nodeInfo(n: k8s.V1Node): NodeInfo {
    return {
      name: n.metadata!.name!,
      labels: n.metadata?.labels ?? {},
      address: nodeAddress(n, this.opts.nodePort()),
    };
  }
  nodes(): NodeInfo[] {
    return (this.#nodes.list() as k8s.V1Node[]).filter((n) => !n.metadata?.deletionTimestamp).map((n) =>
      this.#nodeInfo(n)
    );
  }
  node(name: string): NodeInfo | undefined {
    const n = this.#nodes.get(name) as k8s.V1Node | undefined;
    return n && !n.metadata?.deletionTimestamp ? this.#nodeInfo(n) : undefined;
  }

  #count(verb: string, resource: string) {
    const k = `${verb} ${resource}`;
    this.writes.set(k, (this.writes.get(k) ?? 0) + 1);
  }

  async createProgram(obj: BpfProgram): Promise<BpfProgram> {
    this.#count("create", "bpfprograms");
    const out = await this.#programs.write(
      obj.metadata.name,
      () =>
        this.#api
          ? this.#api.request<Obj>("POST", `/apis/${GROUP}/${VERSION}/bpfprograms`, obj)
          : this.custom.createClusterCustomObject({
            group: GROUP,
            version: VERSION,
            plural: "bpfprograms",
            body: obj,
          }),
    );
    return out as unknown as BpfProgram;
  }

  /** PUT of an object (or its status subresource); the informer's cache learns the answer at once. */
  async #replace<T extends BpfProgram | BpfProgramConfig>(
    plural: "bpfprograms" | "bpfprogramconfigs",
    obj: T,
    status: boolean,
  ): Promise<T> {
    this.#count("update", status ? `${plural}/status` : plural);
    const request = { group: GROUP, version: VERSION, plural, name: obj.metadata.name, body: obj };
    const cache = plural === "bpfprograms" ? this.#programs : this.#configs;
    const path = `/apis/${GROUP}/${VERSION}/${plural}/${obj.metadata.name}${status ? "/status" : ""}`;
    const out = await cache.write(
      obj.metadata.name,
      () =>
        this.#api
          ? this.#api.request<Obj>("PUT", path, obj)
          : (status
            ? this.custom.replaceClusterCustomObjectStatus(request)
            : this.custom.replaceClusterCustomObject(request)) as Promise<Obj>,
    );
    return out as unknown as T;
  }

  updateProgram(obj: BpfProgram): Promise<BpfProgram> {
    return this.#replace("bpfprograms", obj, false);
  }

  updateProgramStatus(obj: BpfProgram): Promise<BpfProgram> {
    return this.#replace("bpfprograms", obj, true);
  }

  async deleteProgram(obj: BpfProgram): Promise<void> {
    this.#count("delete", "bpfprograms");
    try {
      await this.custom.deleteClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: "bpfprograms",
        name: obj.metadata.name,
      });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
    this.#programs.deleted(obj.metadata.name);
  }

  updateConfig(obj: BpfProgramConfig): Promise<BpfProgramConfig> {
    return this.#replace("bpfprogramconfigs", obj, false);
  }

  updateConfigStatus(obj: BpfProgramConfig): Promise<BpfProgramConfig> {
    return this.#replace("bpfprogramconfigs", obj, true);
  }

  async event(e: EventSpec): Promise<void> {
    this.#count("create", "events");
    const now = new Date();
    await this.core.createNamespacedEvent({
      namespace: this.opts.eventNamespace ?? "default",
      body: {
        metadata: { generateName: `${e.name}.` },
        involvedObject: { apiVersion: API_VERSION, kind: e.kind, name: e.name, uid: e.uid },
        reason: e.reason,
        message: e.message.slice(0, 1024),
        type: e.type,
        source: { component: "bpfd-controller" },
        reportingComponent: "bpfd.io/controller",
        reportingInstance: this.opts.identity,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  }

  /** Reads a pull secret (default namespace: bpfd's own) with the controller's RBAC (get secrets). */
  async pullSecret(ref: SecretRef): Promise<string> {
    const namespace = ref.namespace ?? this.opts.namespace;
    const where = `${namespace}/${ref.name}`;
    let secret: k8s.V1Secret;
    try {
      secret = await this.core.readNamespacedSecret({ name: ref.name, namespace });
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === 404) throw new PullSecretError(`pull secret ${where} not found`);
      if (code === 403) {
        throw new PullSecretError(
          `pull secret ${where}: the controller may not read it (grant get on secrets in ${namespace})`,
        );
      }
      throw new PullSecretError(`pull secret ${where}: ${(err as Error).message}`);
    }
    return dockerConfigOf(secret, where);
  }
}
