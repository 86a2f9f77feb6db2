/**
 * The zod schemas of bpfd's Kubernetes API, group `bpfd.io`, version `v1alpha1`:
 *
 * - `BpfProgramConfig` (cluster-scoped): what to load, where (nodeselector), how to attach it. The seed's
 *   example `xdp-pass-all-nodes` is valid as written; field names follow its lower-case style
 *   (`nodeselector`, `attachpoint`, `bytecode.imageurl`).
 * - `BpfProgram` (cluster-scoped, one per config and selected node, named `<config>-<node>`): what the
 *   node reports: `spec.programs` keyed by kernel program id with attach point and map pin paths, and
 *   `status.conditions` (`Loaded`, reasons `bpfdLoaded` / `bpfdNotLoaded` / `nodeNotSelected`).
 *
 * The controller and `functions/reconcile.ts` validate with these schemas, and crds/generate.ts turns them
 * into the CRDs' structural OpenAPI schemas (`.meta()` carries what only the API server checks: the
 * `oneOf`/`anyOf` junctors that mirror the `superRefine` checks below, list types, printer columns stay in
 * crds/crds.ts). Shared building blocks (priority, proceed-on actions, XDP mode, direction, interface
 * names, pull policy) come from model/schemas.ts, so the CRDs and the node functions agree.
 *
 * @module
 */
import { z } from "zod";
import {
  DEFAULT_PRIORITY,
  Direction,
  InterfaceName,
  Priority,
  type ProgramType,
  TcAction,
  XdpAction,
  XdpMode,
} from "../model/schemas.ts";
import { PullPolicy } from "../model/image.ts";

export const GROUP = "bpfd.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
/** The finalizer the controller puts on every BpfProgram (as in the seed's example). */
export const FINALIZER = "bpfd.io.agent/finalizer";
/** The finalizer on a BpfProgramConfig while any of its BpfPrograms still exist. */
export const CONFIG_FINALIZER = "bpfd.io.controller/finalizer";
/** The label naming a BpfProgram's BpfProgramConfig. */
export const OWNING_CONFIG_LABEL = "owningConfig";
/** The label naming a BpfProgram's node. */
export const NODE_LABEL = "bpfd.io/node";

/** The program types of the CRD, in the seed's spelling (`XDP`), and their node-runtime names. */
export const CrdProgramType = z.enum([
  "XDP",
  "TC",
  "TCX",
  "Tracepoint",
  "Kprobe",
  "Kretprobe",
  "Uprobe",
  "Uretprobe",
  "Fentry",
  "Fexit",
  "RawTracepoint",
  "TpBtf",
  "PerfEvent",
]).describe("The BPF program type.");
export type CrdProgramType = z.infer<typeof CrdProgramType>;

export const RUNTIME_TYPE: Record<CrdProgramType, ProgramType> = {
  XDP: "xdp",
  TC: "tc",
  TCX: "tcx",
  Tracepoint: "tracepoint",
  Kprobe: "kprobe",
  Kretprobe: "kretprobe",
  Uprobe: "uprobe",
  Uretprobe: "uretprobe",
  Fentry: "fentry",
  Fexit: "fexit",
  RawTracepoint: "raw_tracepoint",
  TpBtf: "tp_btf",
  PerfEvent: "perf_event",
};
export const CRD_TYPE = Object.fromEntries(
  Object.entries(RUNTIME_TYPE).map(([k, v]) => [v, k]),
) as Record<ProgramType, CrdProgramType>;

const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A Kubernetes label selector; `{}` selects every node. */
export const LabelSelector = z.object({
  matchLabels: z.record(z.string(), z.string()).optional().describe("Labels the node must have."),
  matchExpressions: z.array(z.object({
    key: z.string().min(1),
    operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
    values: z.array(z.string()).optional(),
  })).optional().describe("Set-based requirements, all of which must hold."),
}).describe("Which nodes run the program; {} selects every node.");
export type LabelSelector = z.infer<typeof LabelSelector>;

/** Every proceed-on action name, XDP's and TC's. */
const ProceedOnAction = z.enum(
  [...new Set([...XdpAction.options, ...TcAction.options])] as [string, ...string[]],
);

/** Where the program attaches; which fields are needed depends on `type` (see ATTACH_REQUIRED). */
export const AttachPoint = z.object({
  interface: z.optional(InterfaceName).describe("XDP, TC, TCX: the network interface on the node."),
  direction: z.optional(Direction).describe("TC, TCX: ingress or egress."),
  proceedon: z.array(ProceedOnAction).min(1).optional().describe(
    "XDP, TC: the return values after which the next program on the hook runs.",
  ),
  mode: z.optional(XdpMode).describe("XDP: native (default), skb or hw."),
  tracepoint: z.string().regex(
    /^[A-Za-z0-9_]+\/[A-Za-z0-9_]+$/,
    "must be group/name, e.g. syscalls/sys_enter_openat",
  )
    .optional().describe("Tracepoint: group/name."),
  functionname: z.string().min(1).max(256).regex(/^[A-Za-z0-9_.@]+$/, "must be a symbol name").optional()
    .describe(
      "Kprobe, Uprobe: the function to probe; Fentry, Fexit: the kernel function traced; TpBtf: the raw tracepoint.",
    ),
  offset: z.number().int().min(0).optional().describe("Kprobe, Uprobe: offset into the function/target."),
  target: z.string().min(1).max(4096).optional().describe("Uprobe: the binary or library probed."),
  pid: z.number().int().positive().optional().describe("Uprobe: only this process."),
  rawtracepoint: z.string().max(128).regex(/^[A-Za-z0-9_]+$/, "must be a raw tracepoint name, e.g. sys_enter")
    .optional().describe("RawTracepoint: the raw tracepoint's name."),
  event: z.enum(["cpu-clock", "task-clock", "cpu-cycles"]).optional().describe(
    "PerfEvent: the event sampled (default cpu-clock).",
  ),
  frequency: z.number().int().min(1).max(100_000).optional().describe("PerfEvent: samples per second."),
  period: z.number().int().positive().optional().describe("PerfEvent: a sample every this many events."),
  cpu: z.number().int().min(0).max(4095).optional().describe("PerfEvent: the CPU sampled (default 0)."),
}).describe("Where the program attaches; the fields needed depend on type.");
export type AttachPoint = z.infer<typeof AttachPoint>;

/** The attach-point fields each program type requires. */
export const ATTACH_REQUIRED: Record<CrdProgramType, (keyof AttachPoint)[]> = {
  XDP: ["interface"],
  TC: ["interface", "direction"],
  TCX: ["interface", "direction"],
  Tracepoint: ["tracepoint"],
  Kprobe: ["functionname"],
  Kretprobe: ["functionname"],
  Uprobe: ["target"],
  Uretprobe: ["target"],
  Fentry: [],
  Fexit: [],
  RawTracepoint: ["rawtracepoint"],
  TpBtf: [],
  PerfEvent: [],
};

/** The attach-point fields each program type accepts. */
export const ATTACH_ALLOWED: Record<CrdProgramType, (keyof AttachPoint)[]> = {
  XDP: ["interface", "proceedon", "mode"],
  TC: ["interface", "direction", "proceedon"],
  TCX: ["interface", "direction"],
  Tracepoint: ["tracepoint"],
  Kprobe: ["functionname", "offset"],
  Kretprobe: ["functionname", "offset"],
  Uprobe: ["target", "functionname", "offset", "pid"],
  Uretprobe: ["target", "functionname", "offset", "pid"],
  Fentry: ["functionname"],
  Fexit: ["functionname"],
  RawTracepoint: ["rawtracepoint"],
  TpBtf: ["functionname"],
  PerfEvent: ["event", "frequency", "period", "cpu"],
};

/** The proceed-on names each hook understands. */
export const PROCEED_ON: Partial<Record<CrdProgramType, readonly string[]>> = {
  XDP: XdpAction.options,
  TC: TcAction.options,
};

/**
 * The CRD's per-type rules, as the API server checks them: for each group of types with the same needs,
 * "type is not one of these, or attachpoint has these fields (and only these proceed-on names)". Written
 * as implications (`anyOf: [not, then]`) inside one `allOf`, the server's message names the missing
 * field (`spec.attachpoint.direction: Required value`).
 */
function typeJunctors(): Record<string, unknown>[] {
  const groups = new Map<string, CrdProgramType[]>();
  for (const t of CrdProgramType.options) {
    const key = JSON.stringify([ATTACH_REQUIRED[t], PROCEED_ON[t] ?? null]);
    groups.set(key, [...(groups.get(key) ?? []), t]);
  }
  const rules: Record<string, unknown>[] = [];
  for (const types of groups.values()) {
    const req = ATTACH_REQUIRED[types[0]];
    const proceed = PROCEED_ON[types[0]];
    if (!req.length && !proceed) continue;
    const attach: Record<string, unknown> = {};
    if (req.length) attach.required = req;
    if (proceed) attach.properties = { proceedon: { items: { enum: proceed } } };
    rules.push({
      anyOf: [{ not: { properties: { type: { enum: types } } } }, { properties: { attachpoint: attach } }],
    });
  }
  return rules;
}

/** Where the bytecode comes from: an OCI image (`imageurl`) or a file on the node (`path`). */
export const Bytecode = z.object({
  imageurl: z.string().min(1).max(4096).optional().describe(
    "An OCI image with the object file (bpfman's format).",
  ),
  path: z.string().min(1).max(4096).regex(/^\//, "must be an absolute path").optional().describe(
    "An object file on the node.",
  ),
  imagepullpolicy: z.optional(PullPolicy).describe("Always, IfNotPresent (default) or Never."),
  imagepullsecret: z.object({
    name: z.string().min(1),
    namespace: z.string().min(1).optional(),
  }).optional().describe("A Secret of type kubernetes.io/dockerconfigjson with the registry credentials."),
}).superRefine((b, ctx) => {
  if ((b.imageurl === undefined) === (b.path === undefined)) {
    ctx.addIssue({ code: "custom", message: "give exactly one of imageurl and path", path: ["imageurl"] });
  }
}).meta({ oneOf: [{ required: ["imageurl"] }, { required: ["path"] }] }).describe(
  "Where the bytecode comes from: exactly one of imageurl and path.",
);
export type Bytecode = z.infer<typeof Bytecode>;

const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The desired state: a program, its bytecode, where it attaches and on which nodes. */
export const BpfProgramConfigSpec = z.object({
  name: z.string().min(1).max(128).regex(identifier, "must be a C identifier").describe(
    "The program's function name in the object file (the image's section name).",
  ),
  type: CrdProgramType,
  nodeselector: LabelSelector.optional(),
  priority: z.optional(Priority).describe(
    `XDP, TC: order on a shared hook, lower first (0-1000, default ${DEFAULT_PRIORITY}).`,
  ),
  attachpoint: AttachPoint,
  bytecode: Bytecode,
  globaldata: z.record(
    z.string().regex(identifier, "must be a C identifier"),
    z.string().regex(base64, "must be base64"),
  ).optional().describe("Values for global variables (.rodata/.data), base64 bytes by name."),
  mapowner: z.string().min(1).max(253).optional().describe(
    "Share the maps of the program another BpfProgramConfig (by name) loads on the same node.",
  ),
  mapreuse: z.enum(["New", "Keep"]).optional().describe(
    "When a bytecode change reloads the program: New (default) gives it new maps; Keep has it reuse the " +
      "running program's maps by name (their contents stay).",
  ),
  rollout: z.object({
    maxunavailable: z.string().regex(/^(100|[1-9]?[0-9])%$|^[0-9]{1,6}$/, "must be a count or a percentage")
      .optional().describe(
        "How many selected nodes may be between bytecode versions (or failing) at once: a count or a " +
          "percentage, default 10% (at least 1).",
      ),
  }).optional().describe("How a bytecode change (or a new image digest) rolls out across nodes."),
}).superRefine((s, ctx) => {
  const ap = s.attachpoint;
  for (const f of ATTACH_REQUIRED[s.type]) {
    if (ap[f] === undefined) {
      ctx.addIssue({
        code: "custom",
        message: `${s.type} programs need attachpoint.${f}`,
        path: ["attachpoint", f],
      });
    }
  }
  for (const f of Object.keys(ap) as (keyof AttachPoint)[]) {
    if (ap[f] !== undefined && !ATTACH_ALLOWED[s.type].includes(f)) {
      ctx.addIssue({
        code: "custom",
        message: `attachpoint.${f} does not apply to ${s.type} programs`,
        path: ["attachpoint", f],
      });
    }
  }
  const allowed = PROCEED_ON[s.type];
  for (const [i, a] of (ap.proceedon ?? []).entries()) {
    if (allowed && !allowed.includes(a)) {
      ctx.addIssue({
        code: "custom",
        message: `${a} is not a ${s.type} action (one of ${allowed.join(", ")})`,
        path: ["attachpoint", "proceedon", i],
      });
    }
  }
  if ((s.type === "Uprobe" || s.type === "Uretprobe") && ap.functionname === undefined && !ap.offset) {
    ctx.addIssue({
      code: "custom",
      message: "give attachpoint.functionname, or a non-zero attachpoint.offset",
      path: ["attachpoint", "functionname"],
    });
  }
}).meta({ allOf: typeJunctors() }).describe("What to load, where to attach it, and on which nodes.");
export type BpfProgramConfigSpec = z.infer<typeof BpfProgramConfigSpec>;

/** A status condition (the shape of metav1.Condition). */
export const Condition = z.object({
  type: z.string().min(1).max(316),
  status: z.enum(["True", "False", "Unknown"]),
  reason: z.string().min(1).max(1024),
  message: z.string().max(32768),
  lastTransitionTime: z.string().meta({ format: "date-time" }),
  observedGeneration: z.number().int().min(0).optional(),
});
export type Condition = z.infer<typeof Condition>;

const Conditions = z.array(Condition).meta({
  "x-kubernetes-list-type": "map",
  "x-kubernetes-list-map-keys": ["type"],
});

/** The controller's summary: how many selected nodes have the program loaded, and which fail. */
export const BpfProgramConfigStatus = z.object({
  conditions: Conditions.optional(),
  nodes: z.object({
    selected: z.number().int().min(0),
    loaded: z.number().int().min(0),
    failing: z.number().int().min(0),
  }).optional(),
  failingNodes: z.array(z.string()).optional().describe("Nodes where loading failed (at most 20 named)."),
  digests: z.record(z.string(), z.array(z.string())).optional().describe(
    "Image digest -> the selected nodes running it (images only).",
  ),
  observedGeneration: z.number().int().min(0).optional(),
});
export type BpfProgramConfigStatus = z.infer<typeof BpfProgramConfigStatus>;

/** One program as a node reports it, keyed by its kernel id in `spec.programs`. */
export const ProgramState = z.object({
  name: z.string().optional(),
  type: CrdProgramType.optional(),
  tag: z.string().optional(),
  attachpoint: AttachPoint,
  maps: z.record(z.string(), z.string()).describe("Map name to pin path on the node."),
  mappinpath: z.string().optional().describe("The directory the maps are pinned in."),
  linkid: z.number().int().optional().describe("bpfd's id of the attachment."),
  loadedby: z.string().optional().describe("The identity that asked the node runtime to load it."),
  loadedat: z.string().optional().describe("When the node runtime loaded it."),
  digest: z.string().optional().describe("The image digest the program was loaded from (images only)."),
});
export type ProgramState = z.infer<typeof ProgramState>;

export const BpfProgramSpec = z.object({
  node: z.string().min(1).optional().describe("The node this BpfProgram is for."),
  programs: z.record(z.string(), ProgramState).optional().describe(
    "What is loaded on the node for the config, keyed by kernel program id.",
  ),
});
export type BpfProgramSpec = z.infer<typeof BpfProgramSpec>;

export const BpfProgramStatus = z.object({
  conditions: Conditions.optional(),
});
export type BpfProgramStatus = z.infer<typeof BpfProgramStatus>;

/** The metadata the controller and tests read (the API server owns the rest). */
export const ObjectMeta = z.object({
  name: z.string(),
  uid: z.string().optional(),
  generation: z.number().int().optional(),
  resourceVersion: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  finalizers: z.array(z.string()).optional(),
  ownerReferences: z.array(z.object({
    apiVersion: z.string(),
    kind: z.string(),
    name: z.string(),
    uid: z.string(),
    controller: z.boolean().optional(),
    blockOwnerDeletion: z.boolean().optional(),
  })).optional(),
  deletionTimestamp: z.union([z.string(), z.date()]).optional(),
  creationTimestamp: z.union([z.string(), z.date()]).optional(),
}).passthrough();

export const BpfProgramConfig = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal("BpfProgramConfig"),
  metadata: ObjectMeta,
  spec: BpfProgramConfigSpec,
  status: BpfProgramConfigStatus.optional(),
});
export type BpfProgramConfig = z.infer<typeof BpfProgramConfig>;

export const BpfProgram = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal("BpfProgram"),
  metadata: ObjectMeta,
  spec: BpfProgramSpec,
  status: BpfProgramStatus.optional(),
});
export type BpfProgram = z.infer<typeof BpfProgram>;

/** Does a node's label set match a selector? (`{}` and undefined match everything.) */
export function selectorMatches(
  sel: LabelSelector | undefined,
  labels: Record<string, string> = {},
): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const vals = e.values ?? [];
    switch (e.operator) {
      case "In":
        if (!has || !vals.includes(labels[e.key])) return false;
        break;
      case "NotIn":
        if (has && vals.includes(labels[e.key])) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
    }
  }
  return true;
}
