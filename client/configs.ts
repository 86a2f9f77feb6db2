/**
 * For an application's operator (the seed's deployment model 3): create, update and delete
 * BpfProgramConfig objects with typed specs. Specs are checked with the same zod schema the CRD and the
 * controller use before anything is sent, so a bad spec fails here with the field and the reason
 * (`spec.attachpoint.interface: XDP programs need attachpoint.interface`). Needs the ClusterRole
 * `bpfd-bpfprogramconfig-editor`.
 *
 * @example
 * ```ts
 * const configs = new BpfProgramConfigs(kc);
 * await configs.apply("xdp-counter", {
 *   name: "xdp_counter", type: "XDP", nodeselector: {}, attachpoint: { interface: "eth0" },
 *   bytecode: { imageurl: "quay.io/example/xdp_counter:v1" },
 * }, { labels: { app: "demo" } });
 * await configs.waitLoaded("xdp-counter");
 * await configs.delete("xdp-counter", { wait: true });
 * ```
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import type { z } from "zod";
import { API_VERSION, type BpfProgramConfig, BpfProgramConfigSpec, GROUP, VERSION } from "../crds/schema.ts";

/** A BpfProgramConfig spec as an application writes it (defaults may be left out). */
export type BpfProgramConfigSpecInput = z.input<typeof BpfProgramConfigSpec>;

/** A spec that does not validate, or a name that is not a Kubernetes name. */
export class InvalidSpecError extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`${field}: ${reason}`);
    this.name = "InvalidSpecError";
  }
}

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function checkName(name: string): void {
  if (!name || name.length > 253 || !NAME.test(name)) {
    throw new InvalidSpecError("metadata.name", "must be a DNS subdomain (lower case, digits, '-', '.')");
  }
}

/** The validated spec, or an InvalidSpecError naming the first bad field. */
export function validateSpec(spec: BpfProgramConfigSpecInput): BpfProgramConfigSpec {
  const r = BpfProgramConfigSpec.safeParse(spec);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new InvalidSpecError(["spec", ...issue.path.map(String)].join("."), issue.message);
}

export interface ObjectOptions {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const codeOf = (e: unknown) => (e as { code?: number })?.code;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** BpfProgramConfig objects of one cluster. */
export class BpfProgramConfigs {
  readonly #api: k8s.CustomObjectsApi;
  readonly #where = { group: GROUP, version: VERSION, plural: "bpfprogramconfigs" };

  constructor(kc: k8s.KubeConfig) {
    this.#api = kc.makeApiClient(k8s.CustomObjectsApi);
  }

  /** The config, or undefined. */
  async get(name: string): Promise<BpfProgramConfig | undefined> {
    try {
      return await this.#api.getClusterCustomObject({ ...this.#where, name }) as BpfProgramConfig;
    } catch (e) {
      if (codeOf(e) === 404) return undefined;
      throw e;
    }
  }

  /** Configs, optionally those matching a label selector (`app=demo`). */
  async list(labelSelector?: string): Promise<BpfProgramConfig[]> {
    const r = await this.#api.listClusterCustomObject({ ...this.#where, labelSelector }) as {
      items: BpfProgramConfig[];
    };
    return r.items;
  }

  /** Creates a config; fails (409) if one of that name exists. */
  async create(
    name: string,
    spec: BpfProgramConfigSpecInput,
    opts: ObjectOptions = {},
  ): Promise<BpfProgramConfig> {
    checkName(name);
    const body = {
      apiVersion: API_VERSION,
      kind: "BpfProgramConfig",
      metadata: { name, labels: opts.labels, annotations: opts.annotations },
      spec: validateSpec(spec),
    };
    return await this.#api.createClusterCustomObject({ ...this.#where, body }) as BpfProgramConfig;
  }

  /**
   * Replaces the spec of an existing config (`spec` may be a function of the current one); labels and
   * annotations given are merged in. Retries on conflicting writes.
   */
  async update(
    name: string,
    spec: BpfProgramConfigSpecInput | ((current: BpfProgramConfigSpec) => BpfProgramConfigSpecInput),
    opts: ObjectOptions = {},
  ): Promise<BpfProgramConfig> {
    checkName(name);
    for (let attempt = 0;; attempt++) {
      const cur = await this.get(name);
      if (!cur) throw Object.assign(new Error(`BpfProgramConfig ${name} not found`), { code: 404 });
      const next = validateSpec(typeof spec === "function" ? spec(cur.spec) : spec);
      const body = {
        ...cur,
        metadata: {
          ...cur.metadata,
          labels: { ...cur.metadata.labels, ...opts.labels },
          annotations: { ...cur.metadata.annotations, ...opts.annotations },
        },
        spec: next,
      };
      try {
        return await this.#api.replaceClusterCustomObject({ ...this.#where, name, body }) as BpfProgramConfig;
      } catch (e) {
        if (codeOf(e) !== 409 || attempt >= 5) throw e;
      }
    }
  }

  /** Creates the config, or updates it if it exists. */
  async apply(
    name: string,
    spec: BpfProgramConfigSpecInput,
    opts: ObjectOptions = {},
  ): Promise<BpfProgramConfig> {
    try {
      return await this.create(name, spec, opts);
    } catch (e) {
      if (codeOf(e) !== 409) throw e;
      return await this.update(name, spec, opts);
    }
  }

  /**
   * Deletes a config (true if it existed). With `wait`, returns once it is gone: the controller has had
   * every node unload it first (its finalizer).
   */
  async delete(name: string, opts: { wait?: boolean; timeoutMs?: number } = {}): Promise<boolean> {
    try {
      await this.#api.deleteClusterCustomObject({ ...this.#where, name });
    } catch (e) {
      if (codeOf(e) === 404) return false;
      throw e;
    }
    if (opts.wait) {
      const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
      while (await this.get(name)) {
        if (Date.now() > deadline) {
          throw new Error(`BpfProgramConfig ${name} still there (finalizers pending)`);
        }
        await sleep(250);
      }
    }
    return true;
  }

  /**
   * Waits until the controller reports the config loaded on every node it selects (at least `minNodes`,
   * default 1) and failing on none; returns the config. Throws with the failing nodes after `timeoutMs`.
   */
  async waitLoaded(
    name: string,
    opts: { timeoutMs?: number; minNodes?: number } = {},
  ): Promise<BpfProgramConfig> {
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    while (true) {
      const cur = await this.get(name);
      const n = cur?.status?.nodes;
      const current = cur?.status?.observedGeneration === undefined ||
        cur.status.observedGeneration === cur.metadata.generation;
      if (n && current && n.selected >= (opts.minNodes ?? 1) && n.loaded === n.selected && n.failing === 0) {
        return cur!;
      }
      if (Date.now() > deadline) {
        const why = !cur
          ? "it does not exist"
          : n
          ? `${n.loaded}/${n.selected} nodes loaded, failing: ${
            (cur.status?.failingNodes ?? []).join(", ") || "none"
          }`
          : "no status yet (is the controller running?)";
        throw new Error(`BpfProgramConfig ${name} not loaded: ${why}`);
      }
      await sleep(250);
    }
  }
}
