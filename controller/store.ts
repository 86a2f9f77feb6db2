/**
 * What the controller's logic reads and writes through: the `Store` (the API server in a cluster,
 * memory in standalone mode), the Events it records, and the counters a benchmark reads.
 *
 * @example
 * ```ts
 * const store: Store = new KubeStore(opts, handlers);
 * ```
 * @module
 */
import type { BpfProgram, BpfProgramConfig } from "../crds/schema.ts";
import type { NodeInfo } from "./node_client.ts";
import type { SecretRef } from "./pull_secrets.ts";

/** A Kubernetes event about one object. */
export interface EventSpec {
  kind: "BpfProgram" | "BpfProgramConfig";
  name: string;
  uid?: string;
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

/** Where the controller reads and writes: the API server, or memory in standalone mode. */
export interface Store {
  configs(): BpfProgramConfig[];
  config(name: string): BpfProgramConfig | undefined;
  nodes(): NodeInfo[];
  node(name: string): NodeInfo | undefined;
  programs(): BpfProgram[];
  program(name: string): BpfProgram | undefined;
  createProgram(obj: BpfProgram): Promise<BpfProgram>;
  /** Replaces metadata (labels, finalizers) and spec; fails on a stale resourceVersion. */
  updateProgram(obj: BpfProgram): Promise<BpfProgram>;
  updateProgramStatus(obj: BpfProgram): Promise<BpfProgram>;
  deleteProgram(obj: BpfProgram): Promise<void>;
  updateConfig(obj: BpfProgramConfig): Promise<BpfProgramConfig>;
  updateConfigStatus(obj: BpfProgramConfig): Promise<BpfProgramConfig>;
  event(e: EventSpec): Promise<void>;
  /** A pull secret's `.dockerconfigjson` (namespace default: bpfd's own); throws PullSecretError. */
  pullSecret(ref: SecretRef): Promise<string>;
}

/** Counters a benchmark or a test can read. */
export interface ReconcilerStats {
  nodeCalls: number;
  nodeErrors: number;
  writes: number;
  events: number;
}
