/**
 * Whether a pod may have the maps it asks for, and where they are: the pod as the API server has it (same
 * uid, this node, its ServiceAccount, its fsGroup), a SubjectAccessReview for that ServiceAccount (verb
 * `use` on `bpfprogramconfigs/maps` named after the config, in the pod's namespace; `update` as well to
 * write), the config, and this node's program of it (Loaded, or why not) with the named maps' pins.
 *
 * @example
 * ```ts
 * const grant = await grantFor(req, { api, nodeName: "node-a", programs: () => state.programs() });
 * ```
 * @module
 */
import { CONFIG_KEY } from "../model/names.ts";
import type { ProgramRecord } from "../model/schemas.ts";
import { CsiError } from "./errors.ts";
import type { PublishRequest } from "./request.ts";

/** The API server, as the plugin needs it: a GET that gives undefined for 404, and a create. */
export interface KubeApi {
  get<T>(path: string): Promise<T | undefined>;
  create<T>(path: string, body: unknown): Promise<T>;
}

/** What the lookups need. */
export interface AccessDeps {
  api: KubeApi;
  nodeName: string;
  /** This node's program records. */
  programs(): ProgramRecord[];
}

/** What a pod is granted: the group owning its pins, write access, and the maps' pins on the node. */
export interface Grant {
  gid: number;
  writable: boolean;
  maps: Record<string, string>;
}

/** The RBAC attributes of map access: verb `use` (read) or `update` (write) on `bpfprogramconfigs/maps`. */
export const MAPS_ACCESS = { group: "bpfd.io", resource: "bpfprogramconfigs", subresource: "maps" } as const;
export const READ_VERB = "use";
export const WRITE_VERB = "update";

interface PodObject {
  metadata?: { uid?: string };
  spec?: { nodeName?: string; serviceAccountName?: string; securityContext?: { fsGroup?: number } };
}
interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
interface Review {
  status?: { allowed?: boolean; reason?: string; evaluationError?: string };
}

async function checkPod(req: PublishRequest, deps: AccessDeps): Promise<number> {
  const { namespace, name, uid, serviceAccount } = req.pod;
  const pod = await deps.api.get<PodObject>(`/api/v1/namespaces/${namespace}/pods/${name}`);
  if (!pod || pod.metadata?.uid !== uid) {
    throw new CsiError("not_found", `pod ${namespace}/${name} (uid ${uid}) not found`);
  }
  if (pod.spec?.nodeName !== deps.nodeName) {
    throw new CsiError("failed_precondition", `pod ${namespace}/${name} is not on node ${deps.nodeName}`);
  }
  if ((pod.spec?.serviceAccountName ?? "default") !== serviceAccount) {
    throw new CsiError(
      "invalid_argument",
      `pod ${namespace}/${name} does not run as ServiceAccount ${serviceAccount}`,
    );
  }
  const gid = pod.spec?.securityContext?.fsGroup;
  if (gid === undefined || !Number.isInteger(gid) || gid <= 0) {
    throw new CsiError(
      "failed_precondition",
      `pod ${namespace}/${name} has no spec.securityContext.fsGroup: its map pins are owned by that group`,
    );
  }
  return gid;
}

async function review(req: PublishRequest, deps: AccessDeps, verb: string): Promise<void> {
  const { namespace, serviceAccount } = req.pod;
  const r = await deps.api.create<Review>("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
    apiVersion: "authorization.k8s.io/v1",
    kind: "SubjectAccessReview",
    spec: {
      user: `system:serviceaccount:${namespace}:${serviceAccount}`,
      groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`, "system:authenticated"],
      resourceAttributes: { ...MAPS_ACCESS, namespace, verb, name: req.config },
    },
  });
  if (r.status?.allowed) return;
  const why = r.status?.reason || r.status?.evaluationError;
  throw new CsiError(
    "permission_denied",
    `ServiceAccount ${namespace}/${serviceAccount} may not ${
      verb === WRITE_VERB ? "write" : "use"
    } the maps of ` +
      `BpfProgramConfig ${req.config} (verb ${verb} on bpfprogramconfigs/maps in namespace ${namespace}: ` +
      `ClusterRole ${verb === WRITE_VERB ? "bpfd-maps-writer" : "bpfd-maps-user"})${why ? `: ${why}` : ""}`,
  );
}

/** The config's program on this node, or the reason there is none (retryable unless it failed). */
async function nodeProgram(req: PublishRequest, deps: AccessDeps): Promise<ProgramRecord> {
  const config = req.config;
  const mine = deps.programs().filter((p) => p.reconciledFor && p.metadata[CONFIG_KEY] === config);
  const latest = mine.sort((a, b) => a.loadedAt.localeCompare(b.loadedAt)).at(-1);
  if (latest) return latest;
  if (!(await deps.api.get(`/apis/bpfd.io/v1alpha1/bpfprogramconfigs/${config}`))) {
    throw new CsiError("not_found", `BpfProgramConfig ${config} not found`);
  }
  const bp = await deps.api.get<{ status?: { conditions?: Condition[] } }>(
    `/apis/bpfd.io/v1alpha1/bpfprograms/${config}-${deps.nodeName}`,
  );
  const loaded = bp?.status?.conditions?.find((c) => c.type === "Loaded");
  if (loaded?.status === "False" && loaded.reason === "bpfdNotLoaded") {
    throw new CsiError(
      "failed_precondition",
      `BpfProgramConfig ${config}'s program failed on node ${deps.nodeName}: ${
        loaded.message ?? "not loaded"
      }`,
    );
  }
  throw new CsiError("unavailable", `BpfProgramConfig ${config} is not Loaded on node ${deps.nodeName} yet`);
}

/** Checks the pod, its grant and the config; the maps' pins on this node. Throws a CsiError naming why not. */
export async function grantFor(req: PublishRequest, deps: AccessDeps): Promise<Grant> {
  const gid = await checkPod(req, deps);
  // Authorization first: a pod without the grant learns nothing about the config.
  await review(req, deps, READ_VERB);
  if (req.writable) await review(req, deps, WRITE_VERB);
  const program = await nodeProgram(req, deps);
  const maps: Record<string, string> = {};
  for (const name of req.maps) {
    const pin = program.maps[name];
    if (!pin) {
      throw new CsiError(
        "not_found",
        `BpfProgramConfig ${req.config}'s program has no map ${name} (it has: ${
          Object.keys(program.maps).join(", ")
        })`,
      );
    }
    maps[name] = pin;
  }
  return { gid, writable: req.writable, maps };
}
