/**
 * The zod schemas of bpfd's API: program types, attach points, bytecode sources, program and link
 * records. Functions, the runtime, the CLI and the CRDs all derive from these: one source of truth.
 *
 * @module
 */
import { z } from "zod";
import { ImageSource } from "../runtime/image/schema.ts";

z.config({ jitless: true });

/** The program types bpfd manages. */
export const ProgramType = z.enum([
  "xdp",
  "tc",
  "tcx",
  "tracepoint",
  "kprobe",
  "kretprobe",
  "uprobe",
  "uretprobe",
  "fentry",
  "fexit",
]);
export type ProgramType = z.infer<typeof ProgramType>;

/** A kernel program id. */
export const ProgramId = z.number().int().positive().max(0xffffffff);

/** A C identifier, as BPF program, map and variable names are. */
const identifier = z.string().min(1).max(128).regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be a C identifier");

/** A network interface name (IFNAMSIZ - 1 characters, no slash or white space). */
export const InterfaceName = z.string().min(1).max(15).regex(/^[^\s/:]+$/, "not a valid interface name");

/**
 * A network namespace: a name under /run/netns (as `ip netns add` makes) or a path /proc/<pid>/ns/net.
 * Anything else is refused, so a request cannot point bpfd at an arbitrary file.
 */
export const Netns = z.string().min(1).max(256).refine(
  (s) =>
    /^[A-Za-z0-9_.-]+$/.test(s) && s !== "." && s !== ".." || /^\/proc\/[0-9]+\/ns\/net$/.test(s) ||
    /^\/(var\/)?run\/netns\/[A-Za-z0-9_.-]+$/.test(s) && !s.endsWith("/..") && !s.endsWith("/."),
  "must be a namespace name from /run/netns or a path /proc/<pid>/ns/net",
);

/** Labels a caller attaches to programs, e.g. `{"app": "firewall"}`; filters `list`. */
export const Metadata = z.record(
  z.string().min(1).max(253).regex(/^[A-Za-z0-9_.\/-]+$/, "metadata keys are [A-Za-z0-9_./-]"),
  z.string().max(1024),
);

/** Where bytecode comes from: a local object file, or an OCI image. */
export const BytecodeSource = z.union([
  z.object({ path: z.string().min(1).max(4096) }).strict(),
  z.object({ image: ImageSource }).strict(),
]);
export type BytecodeSource = z.infer<typeof BytecodeSource>;

/** One program to load out of the object file, with what its type needs at load time. */
export const ProgramSpec = z.object({
  /** The function name of the program in the object file. */
  name: identifier,
  type: ProgramType,
  /** fentry/fexit: the kernel function the program traces (default: from the section name). */
  fnName: identifier.optional(),
}).strict();
export type ProgramSpec = z.infer<typeof ProgramSpec>;

/** Priority on a shared hook: lower runs first (libxdp's default run priority is 50). */
export const Priority = z.number().int().min(0).max(1000);
export const DEFAULT_PRIORITY = 50;

export const XdpAction = z.enum(["aborted", "drop", "pass", "tx", "redirect", "dispatcher_return"]);
export const TcAction = z.enum([
  "unspec",
  "ok",
  "reclassify",
  "shot",
  "pipe",
  "stolen",
  "queued",
  "repeat",
  "redirect",
  "trap",
  "dispatcher_return",
]);
export const XdpMode = z.enum(["native", "skb", "hw"]);
export const Direction = z.enum(["ingress", "egress"]);

export const XdpAttach = z.object({
  type: z.literal("xdp"),
  iface: InterfaceName,
  netns: Netns.optional(),
  priority: Priority.default(DEFAULT_PRIORITY),
  proceedOn: z.array(XdpAction).min(1).default(["pass", "dispatcher_return"]),
  mode: XdpMode.default("native"),
}).strict();

const tcHook = {
  iface: InterfaceName,
  direction: Direction,
  netns: Netns.optional(),
  priority: Priority.default(DEFAULT_PRIORITY),
  proceedOn: z.array(TcAction).min(1).default(["pipe", "dispatcher_return"]),
};
/** A cls_bpf filter on the clsact qdisc (any kernel). */
export const TcAttach = z.object({ type: z.literal("tc"), ...tcHook }).strict();
/** A TCX link (kernels >= 6.6), ordered natively. */
export const TcxAttach = z.object({ type: z.literal("tcx"), ...tcHook }).strict();

export const TracepointAttach = z.object({
  type: z.literal("tracepoint"),
  tracepoint: z.string().regex(
    /^[A-Za-z0-9_]+\/[A-Za-z0-9_]+$/,
    "must be group/name, e.g. syscalls/sys_enter_openat",
  ),
}).strict();

export const KprobeAttach = z.object({
  type: z.enum(["kprobe", "kretprobe"]),
  fnName: z.string().min(1).max(128).regex(/^[A-Za-z0-9_.]+$/, "must be a kernel symbol name"),
  offset: z.number().int().min(0).default(0),
}).strict();

export const UprobeAttach = z.object({
  type: z.enum(["uprobe", "uretprobe"]),
  /** An absolute path to the binary or library, or a library name resolved in the usual directories. */
  target: z.string().min(1).max(4096),
  fnName: z.string().min(1).max(256).optional(),
  offset: z.number().int().min(0).default(0),
  /** Only this process (default: every process that runs the target). */
  pid: z.number().int().positive().optional(),
}).strict().refine((v) => v.fnName !== undefined || v.offset > 0, {
  message: "give fnName, or a non-zero offset into the target",
  path: ["fnName"],
});

export const TracingAttach = z.object({ type: z.enum(["fentry", "fexit"]) }).strict();

/** Where and how to attach a loaded program. The variant must fit the program's type. */
export const AttachSpec = z.discriminatedUnion("type", [
  XdpAttach,
  TcAttach,
  TcxAttach,
  TracepointAttach,
  KprobeAttach,
  UprobeAttach,
  TracingAttach,
], { error: `must be one of ${ProgramType.options.join(", ")}` });
export type AttachSpec = z.infer<typeof AttachSpec>;
export type AttachSpecInput = z.input<typeof AttachSpec>;

/** Which attach variants each program type takes. */
export const ATTACH_TYPES_FOR: Record<ProgramType, AttachSpec["type"][]> = {
  xdp: ["xdp"],
  tc: ["tc", "tcx"],
  tcx: ["tcx", "tc"],
  tracepoint: ["tracepoint"],
  kprobe: ["kprobe"],
  kretprobe: ["kretprobe"],
  uprobe: ["uprobe"],
  uretprobe: ["uretprobe"],
  fentry: ["fentry"],
  fexit: ["fexit"],
};

/** A caller's identity, as the runtime established it. */
export const Identity = z.object({
  /** A user name (`system:serviceaccount:bpfd:controller`, `uid:0`). */
  user: z.string(),
  /** How it was established: `unix-socket`, `token`, `in-process`. */
  via: z.string(),
});
export type Identity = z.infer<typeof Identity>;

/** One attachment of a program to a hook, as bpfd records it. */
export const LinkRecord = z.object({
  /** bpfd's id for the attachment (stable across restarts; the kernel link id may be absent for tc). */
  id: z.number().int().positive(),
  programId: ProgramId,
  attach: AttachSpec,
  /** The kernel's link id, for attachments that are BPF links (all but tc filters). */
  kernelLinkId: z.number().int().positive().optional(),
  /** The interface index, for network hooks. */
  ifindex: z.number().int().positive().optional(),
  /** tc filter identity, and whether bpfd created the clsact qdisc. */
  tc: z.object({ handle: z.number().int(), priority: z.number().int(), qdiscCreated: z.boolean() })
    .optional(),
  /**
   * The extension (freplace) program that runs this link's program in a dispatcher slot, while several
   * programs share an XDP or tc hook (absent when the program is attached directly).
   */
  slotProgramId: ProgramId.optional(),
  createdAt: z.string(),
  createdBy: Identity,
  /** Recorded before the kernel step and cleared after it, so a crash in between can be repaired. */
  pending: z.boolean().optional(),
});
export type LinkRecord = z.infer<typeof LinkRecord>;

/** A program bpfd loaded, as it records it. */
export const ProgramRecord = z.object({
  id: ProgramId,
  name: z.string(),
  type: ProgramType,
  tag: z.string(),
  bytecode: z.union([
    z.object({ path: z.string() }),
    z.object({ image: z.object({ url: z.string(), digest: z.string() }) }),
  ]),
  /** The pinned program. */
  pinPath: z.string(),
  /** The directory of the maps this program uses (its own, or its map owner's). */
  mapPinPath: z.string(),
  maps: z.record(z.string(), z.string()),
  /** The program whose maps this one shares (absent when it owns its maps). */
  mapOwnerId: ProgramId.optional(),
  globalData: z.record(z.string(), z.string()).default({}),
  metadata: Metadata.default({}),
  fnName: z.string().optional(),
  loadedAt: z.string(),
  loadedBy: Identity,
});
export type ProgramRecord = z.infer<typeof ProgramRecord>;

/** What the kernel says about a program (the fields `bpftool prog list` shows). */
export const KernelProgramInfo = z.object({
  id: ProgramId,
  type: z.string(),
  name: z.string(),
  tag: z.string(),
  loadedAt: z.string(),
  uid: z.number().int(),
  mapIds: z.array(z.number().int()),
  bytesXlated: z.number().int(),
  bytesJited: z.number().int(),
  verifiedInsns: z.number().int(),
  btfId: z.number().int(),
  runTimeNs: z.number(),
  runCount: z.number(),
});
export type KernelProgramInfo = z.infer<typeof KernelProgramInfo>;

/** A program as `get` and `list` show it: bpfd's record (when managed) and the kernel's view. */
export const ProgramView = z.object({
  id: ProgramId,
  managed: z.boolean(),
  /** Absent when a program bpfd manages is no longer in the kernel (unloaded behind its back). */
  kernel: KernelProgramInfo.optional(),
  program: ProgramRecord.optional(),
  links: z.array(LinkRecord).default([]),
});
export type ProgramView = z.infer<typeof ProgramView>;

/** One program of a hook's chain, in run order (bpfd's or someone else's). */
export const ChainEntryView = z.object({
  position: z.number().int().min(0),
  /** The program that runs: bpfd's program id for its own programs, the kernel's id for others'. */
  programId: ProgramId,
  name: z.string(),
  priority: z.number().int(),
  proceedOn: z.array(z.string()),
  managed: z.boolean(),
  linkId: z.number().int().positive().optional(),
  /** The extension program that runs it in a dispatcher slot. */
  slotProgramId: ProgramId.optional(),
});
export type ChainEntryView = z.infer<typeof ChainEntryView>;

/** A network hook bpfd has programs on, with everything that runs there in order. */
export const HookChainView = z.object({
  /** xdp:<netns>:<iface> or tc:<netns>:<iface>:<direction> (the hook's lock key). */
  hook: z.string(),
  type: z.enum(["xdp", "tc", "tcx"]),
  iface: z.string(),
  netns: z.string().optional(),
  direction: Direction.optional(),
  /** How the chain runs: one program attached directly, a dispatcher (its program id), or TCX links. */
  dispatcherId: ProgramId.optional(),
  chain: z.array(ChainEntryView),
});
export type HookChainView = z.infer<typeof HookChainView>;
