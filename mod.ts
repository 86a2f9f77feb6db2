/**
 * bpfd's public API: the Kubernetes types (BpfProgramConfig, BpfProgram, their zod schemas) and the
 * helper library for applications —
 *
 * - an application's per-node agent (deployment models 2 and 3): `findNodeProgram` waits until this node's
 *   BpfProgram for a config is Loaded and gives the absolute pin paths of its maps; `readMapU64` /
 *   `readMapValue` read a pinned map read-only, without privileges (group `bpfd`);
 * - an application's operator (model 3): `BpfProgramConfigs` creates, updates, applies and deletes
 *   BpfProgramConfig objects with typed, validated specs and waits until they are loaded;
 * - deploying bpfd itself: `deploy`/`undeploy` and the manifests.
 *
 * @example
 * ```ts
 * import * as k8s from "@kubernetes/client-node";
 * import { findNodeProgram, readMapU64 } from "./mod.ts";
 * const kc = new k8s.KubeConfig();
 * kc.loadFromDefault();
 * const { maps } = await findNodeProgram({ kc, config: "xdp-counter" });
 * console.log(readMapU64(maps.xdp_packets));
 * ```
 * @module
 */
export {
  API_VERSION,
  AttachPoint,
  BpfProgram,
  BpfProgramConfig,
  BpfProgramConfigSpec,
  BpfProgramConfigStatus,
  BpfProgramSpec,
  BpfProgramStatus,
  Bytecode,
  Condition,
  CrdProgramType,
  GROUP,
  LabelSelector,
  NODE_LABEL,
  OWNING_CONFIG_LABEL,
  ProgramState,
  selectorMatches,
  VERSION,
} from "./crds/schema.ts";
export {
  BpfProgramConfigs,
  type BpfProgramConfigSpecInput,
  InvalidSpecError,
  type ObjectOptions,
  validateSpec,
} from "./client/configs.ts";
export {
  describeNodeProgram,
  findNodeProgram,
  type FindOptions,
  getNodeProgram,
  type NodeProgram,
  type NodeProgramEntry,
  NotLoadedError,
} from "./client/programs.ts";
export {
  consumeRingBuffer,
  openRingBuffer,
  readMapU64,
  readMapValue,
  type RingBufferConsumer,
  updateMapU32,
  updateMapValue,
} from "./client/maps.ts";
export { type Change, deploy, type DeployOptions, undeploy, type UndeployOptions } from "./deploy/deploy.ts";
export { manifestDocuments, type ManifestOptions, NAMESPACE } from "./manifests/manifests.ts";
export type { Identity } from "./model/schemas.ts";
