/**
 * The node's `reconcile` call as the controller makes it: the request (one BpfProgram's desired state,
 * the BpfProgramConfig spec) and the answer (what is loaded for it). Shared by functions/reconcile.ts,
 * which serves it, and controller/node_client.ts, which sends it; it lives here, beside the CRD schemas
 * it embeds, because both of those folders may import crds/ and neither may import the other.
 *
 * @module
 */
import { z } from "zod";
import { BpfProgramConfigSpec, ProgramState } from "./schema.ts";
import { Requester } from "../model/policy.ts";

const k8sName = z.string().min(1).max(253).regex(
  /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
  "must be a Kubernetes object name (lower case, digits, '-', '.')",
);

/** What the controller asks a node to converge to. */
export const ReconcileInput = z.object({
  /** The BpfProgram's name (`<config>-<node>`): the owner tag of what is loaded for it. */
  name: k8sName,
  /** The BpfProgramConfig's name, recorded with the programs. */
  config: k8sName.optional(),
  /** The desired state (the config's spec); null: unload everything this owner has here. */
  spec: BpfProgramConfigSpec.nullable(),
  /** Map sharing: the BpfProgram name whose program's maps this one uses (its config's `mapowner`). */
  mapOwner: k8sName.optional(),
  /** Who asked for the config (its `bpfd.io/requested-by`): the policy subject, if the caller is trusted. */
  requester: Requester.optional(),
  /**
   * The pull secret's `.dockerconfigjson`, read by the controller and sent over the authenticated TLS
   * connection; used for this call's pulls only, never written to disk.
   */
  pullSecret: z.object({ dockerConfigJson: z.string().min(2).max(64 * 1024) }).strict().optional(),
  /**
   * Whether a bytecode change (or a new digest) may replace a running program now (default true). False:
   * the node does every other change and answers `waiting` (the controller paces roll-outs).
   */
  allowReload: z.boolean().optional(),
}).strict();
/** A reconcile request as a caller writes it. */
export type ReconcileInput = z.input<typeof ReconcileInput>;

/** What the node answers. */
export const ReconcileOutput = z.object({
  name: z.string(),
  /** What is loaded for this owner now, keyed by kernel program id (BpfProgram spec.programs). */
  programs: z.record(z.string(), ProgramState),
  /** Whether anything was changed on the node. */
  changed: z.boolean(),
  /** What was done, in order ("unloaded 12 (spec changed)", "loaded 13", "attached 13 as link 4"). */
  actions: z.array(z.string()),
  /** Set when a reload is due but was not allowed (`allowReload: false`): what waits. */
  waiting: z.string().optional(),
});
/** A reconcile answer. */
export type ReconcileOutput = z.infer<typeof ReconcileOutput>;
