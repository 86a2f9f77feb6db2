/**
 * The schema of `BpfPolicy` (bpfd.io, cluster-scoped): rules naming subjects as RBAC does (users, groups,
 * ServiceAccounts) and what they may load, where, at which priority, from which bytecode. policy/ decides
 * with it, crds/ makes the CRD of it; docs/policy.md has the semantics (union of allows, denies win).
 *
 * @example
 * ```ts
 * BpfPolicySpec.parse({ rules: [{ name: "r", subjects: [{ kind: "Group", name: "net" }], programTypes: ["XDP"] }] });
 * ```
 * @module
 */
import { z } from "zod";
import { Priority, ProgramType } from "./schemas.ts";

/** A program type in the CRDs' spelling: `XDP`, `TC`, `TCX`, `Tracepoint`, `Kprobe`, ... */
export function crdSpelling(t: ProgramType): string {
  return t.length <= 3 ? t.toUpperCase() : t[0].toUpperCase() + t.slice(1);
}

/** Program types as a policy names them (the CRDs' spelling). */
export const PolicyProgramType = z.enum(ProgramType.options.map(crdSpelling) as [string, ...string[]]);

/** Who a rule is about, as an RBAC subject names it. */
export const PolicySubject = z.object({
  kind: z.enum(["User", "Group", "ServiceAccount"]),
  name: z.string().min(1).max(253),
  namespace: z.string().min(1).max(63).optional().describe("ServiceAccount: its namespace."),
}).superRefine((s, ctx) => {
  if ((s.kind === "ServiceAccount") !== (s.namespace !== undefined)) {
    ctx.addIssue({
      code: "custom",
      message: "namespace is required for a ServiceAccount and applies to nothing else",
      path: ["namespace"],
    });
  }
}).describe("A user, a group or a ServiceAccount (namespace and name).");
export type PolicySubject = z.infer<typeof PolicySubject>;

/** A name pattern: exact, with `*` wildcards, or a regular expression between slashes (`/^veth/`). */
const Pattern = z.string().min(1).max(1024);

/** A key-based or keyless signer the bytecode image must be signed by. */
export const PolicySigner = z.object({
  key: z.string().min(1).max(8192).optional().describe("A PEM public key (ECDSA P-256)."),
  identity: z.string().min(1).max(1024).optional().describe(
    "Keyless: the certificate identity (email or URI), exact or /regex/.",
  ),
  issuer: z.string().min(1).max(1024).optional().describe("Keyless: the OIDC issuer, exact."),
}).superRefine((s, ctx) => {
  const keyless = s.identity !== undefined || s.issuer !== undefined;
  if ((s.key !== undefined) === keyless || (keyless && (!s.identity || !s.issuer))) {
    ctx.addIssue({ code: "custom", message: "give key, or identity and issuer", path: ["key"] });
  }
}).meta({
  oneOf: [{ required: ["key"] }, { required: ["identity", "issuer"] }],
}).describe("key, or identity and issuer.");
export type PolicySigner = z.infer<typeof PolicySigner>;

/** One rule: who it is about, and what it allows (or denies). An absent field places no limit. */
export const PolicyRule = z.object({
  name: z.string().min(1).max(128).regex(/^[A-Za-z0-9_.-]+$/, "must be [A-Za-z0-9_.-]").describe(
    "Named in refusals: <policy>/<rule>.",
  ),
  effect: z.enum(["Allow", "Deny"]).optional().describe("Allow (default) or Deny; a matching Deny wins."),
  subjects: z.array(PolicySubject).min(1).max(256).describe("Who the rule is about."),
  programTypes: z.array(PolicyProgramType).min(1).optional().describe("Program types (CRD spelling)."),
  interfaces: z.array(Pattern).min(1).optional().describe("XDP, TC, TCX: interface names or /regex/."),
  tracepoints: z.array(Pattern).min(1).optional().describe(
    "Tracepoint: groups (syscalls), group/name, or /regex/ on group/name.",
  ),
  functions: z.array(Pattern).min(1).optional().describe(
    "Kprobe, Fentry, Uprobe: function names, * wildcards or /regex/.",
  ),
  uprobeTargets: z.array(z.string().min(1).max(4096)).min(1).optional().describe(
    "Uprobe: binaries, libraries or directories (path-boundary prefixes), or library names.",
  ),
  priority: z.object({ min: z.optional(Priority), max: z.optional(Priority) }).optional().describe(
    "XDP, TC, TCX: the priority band [min, max].",
  ),
  registries: z.array(z.string().min(1).max(1024).regex(/^[^\s@]+$/, "a registry host with an optional path"))
    .min(1).optional().describe(
      "Images only from these registries: host[:port][/path], matched at host and path boundaries.",
    ),
  signers: z.array(PolicySigner).min(1).optional().describe(
    "Images must be signed by one of these (path loads never are).",
  ),
  bytecodePaths: z.array(z.string().min(1).max(4096).regex(/^\//, "must be an absolute directory"))
    .min(1).optional().describe(
      "Allow: bytecode.path loads under these directories (without it, path loads are refused).",
    ),
}).describe("A rule: subjects and what they may (Allow) or may not (Deny) do.");
export type PolicyRule = z.infer<typeof PolicyRule>;

export const BpfPolicySpec = z.object({
  rules: z.array(PolicyRule).min(1).max(1000),
}).describe("Rules; the effective policy is the union of every BpfPolicy's allows, and denies win.");
export type BpfPolicySpec = z.infer<typeof BpfPolicySpec>;

export const BpfPolicyStatus = z.object({
  warnings: z.array(z.string()).optional().describe("What the controller found questionable."),
  observedGeneration: z.number().int().min(0).optional(),
});

/** A BpfPolicy object as policy/ reads it (the API server owns the rest of the metadata). */
export const BpfPolicy = z.object({
  apiVersion: z.literal("bpfd.io/v1alpha1"),
  kind: z.literal("BpfPolicy"),
  metadata: z.object({ name: z.string(), generation: z.number().optional() }).passthrough(),
  spec: BpfPolicySpec,
});
export type BpfPolicy = z.infer<typeof BpfPolicy>;

/** The annotation the admission webhook stamps on every BpfProgramConfig: who asked for its spec. */
export const REQUESTED_BY = "bpfd.io/requested-by";

/** Who asks: a user and the groups the API server (or the node runtime) established. */
export const Requester = z.object({
  user: z.string().min(1),
  groups: z.array(z.string()).default([]),
});
export type Requester = z.infer<typeof Requester>;
