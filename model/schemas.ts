/**
 * The zod schemas of bpfd's API: program types, attach points, bytecode sources, program and link
 * records. Functions, the runtime, the CLI and the CRDs all derive from these: one source of truth.
 *
 * @module
 */
import { PositiveInt, z } from "./zod.ts";
import { ImageSource } from "./image.ts";

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
  "raw_tracepoint",
  "tp_btf",
  "perf_event",
]);
export type ProgramType = z.infer<typeof ProgramType>;

/** A kernel program id. */
export const ProgramId = z.int().check(z.positive(), z.maximum(0xffffffff));

/** A C identifier, as BPF program, map and variable names are. */
const identifier = z.string().check(
  z.minLength(1),
  z.maxLength(128),
  z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be a C identifier"),
);

/** A network interface name (IFNAMSIZ - 1 characters, no slash or white space). */
export const InterfaceName = z.string().check(
  z.minLength(1),
  z.maxLength(15),
  z.regex(/^[^\s/:]+$/, "not a valid interface name"),
);

/**
 * A network namespace: a name under /run/netns (as `ip netns add` makes) or a path /proc/<pid>/ns/net.
 * Anything else is refused, so a request cannot point bpfd at an arbitrary file.
 */
export const Netns = z.string().check(
  z.minLength(1),
  z.maxLength(256),
  z.refine(
    (s) =>
      /^[A-Za-z0-9_.-]+$/.test(s) && s !== "." && s !== ".." || /^\/proc\/[0-9]+\/ns\/net$/.test(s) ||
      /^\/(var\/)?run\/netns\/[A-Za-z0-9_.-]+$/.test(s) && !s.endsWith("/..") && !s.endsWith("/."),
    "must be a namespace name from /run/netns or a path /proc/<pid>/ns/net",
  ),
);

/** Labels a caller attaches to programs, e.g. `{"app": "firewall"}`; filters `list`. */
export const Metadata = z.record(
  z.string().check(
    z.minLength(1),
    z.maxLength(253),
    z.regex(/^[A-Za-z0-9_.\/-]+$/, "metadata keys are [A-Za-z0-9_./-]"),
  ),
  z.string().check(z.maxLength(1024)),
);

/** Where bytecode comes from: a local object file, or an OCI image. */
export const BytecodeSource = z.union([
  z.strictObject({ path: z.string().check(z.minLength(1), z.maxLength(4096)) }),
  z.strictObject({ image: ImageSource }),
]);
export type BytecodeSource = z.infer<typeof BytecodeSource>;

/** One program to load out of the object file, with what its type needs at load time. */
export const ProgramSpec = z.strictObject({
  /** The function name of the program in the object file. */
  name: identifier,
  type: ProgramType,
  /**
   * fentry/fexit: the kernel function the program traces; tp_btf: the raw tracepoint (default: from the
   * section name).
   */
  fnName: z.optional(identifier),
});
export type ProgramSpec = z.infer<typeof ProgramSpec>;

/** Priority on a shared hook: lower runs first (libxdp's default run priority is 50). */
export const Priority = z.int().check(z.minimum(0), z.maximum(1000));
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

const DefaultPriority = z._default(Priority, DEFAULT_PRIORITY);
const Offset = z._default(z.int().check(z.minimum(0)), 0);

export const XdpAttach = z.strictObject({
  type: z.literal("xdp"),
  iface: InterfaceName,
  netns: z.optional(Netns),
  priority: DefaultPriority,
  proceedOn: z._default(z.array(XdpAction).check(z.minLength(1)), ["pass", "dispatcher_return"]),
  mode: z._default(XdpMode, "native"),
});

const tcHook = {
  iface: InterfaceName,
  direction: Direction,
  netns: z.optional(Netns),
  priority: DefaultPriority,
  proceedOn: z._default(z.array(TcAction).check(z.minLength(1)), ["pipe", "dispatcher_return"]),
};
/** A cls_bpf filter on the clsact qdisc (any kernel). */
export const TcAttach = z.strictObject({ type: z.literal("tc"), ...tcHook });
/** A TCX link (kernels >= 6.6), ordered natively. */
export const TcxAttach = z.strictObject({ type: z.literal("tcx"), ...tcHook });

export const TracepointAttach = z.strictObject({
  type: z.literal("tracepoint"),
  tracepoint: z.string().check(
    z.regex(/^[A-Za-z0-9_]+\/[A-Za-z0-9_]+$/, "must be group/name, e.g. syscalls/sys_enter_openat"),
  ),
});

export const KprobeAttach = z.strictObject({
  type: z.enum(["kprobe", "kretprobe"]),
  fnName: z.string().check(
    z.minLength(1),
    z.maxLength(128),
    z.regex(/^[A-Za-z0-9_.]+$/, "must be a kernel symbol name"),
  ),
  offset: Offset,
});

export const UprobeAttach = z.strictObject({
  type: z.enum(["uprobe", "uretprobe"]),
  /** An absolute path to the binary or library, or a library name resolved in the usual directories. */
  target: z.string().check(z.minLength(1), z.maxLength(4096)),
  fnName: z.optional(z.string().check(z.minLength(1), z.maxLength(256))),
  offset: Offset,
  /** Only this process (default: every process that runs the target). */
  pid: z.optional(PositiveInt),
}).check(z.refine((v) => v.fnName !== undefined || v.offset > 0, {
  message: "give fnName, or a non-zero offset into the target",
  path: ["fnName"],
}));

export const TracingAttach = z.strictObject({ type: z.enum(["fentry", "fexit"]) });

/** A raw tracepoint, by its name (`sys_enter`, `sched_switch`). */
export const RawTracepointAttach = z.strictObject({
  type: z.literal("raw_tracepoint"),
  tracepoint: z.string().check(
    z.maxLength(128),
    z.regex(/^[A-Za-z0-9_]+$/, "must be a raw tracepoint name, e.g. sys_enter"),
  ),
});

/** A BTF-typed raw tracepoint: its target was given at load (section name or fnName). */
export const TpBtfAttach = z.strictObject({ type: z.literal("tp_btf") });

/** The events a perf_event program samples on. */
export const PerfEventName = z.enum(["cpu-clock", "task-clock", "cpu-cycles"]);

/** A sampling perf event on one CPU: the program runs `frequency` times a second (or every `period`). */
export const PerfEventAttach = z.strictObject({
  type: z.literal("perf_event"),
  event: z._default(PerfEventName, "cpu-clock"),
  /** Samples per second (default 49, as profilers use, off the timer tick). */
  frequency: z.optional(z.int().check(z.minimum(1), z.maximum(100_000))),
  /** A sample every this many events (instead of a frequency). */
  period: z.optional(PositiveInt),
  /** The CPU sampled: attach once per CPU to sample all of them. */
  cpu: z._default(z.int().check(z.minimum(0), z.maximum(4095)), 0),
}).check(z.refine((v) => v.frequency === undefined || v.period === undefined, {
  message: "give frequency or period, not both",
  path: ["period"],
}));

/** Where and how to attach a loaded program. The variant must fit the program's type. */
export const AttachSpec = z.discriminatedUnion("type", [
  XdpAttach,
  TcAttach,
  TcxAttach,
  TracepointAttach,
  KprobeAttach,
  UprobeAttach,
  TracingAttach,
  RawTracepointAttach,
  TpBtfAttach,
  PerfEventAttach,
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
  raw_tracepoint: ["raw_tracepoint"],
  tp_btf: ["tp_btf"],
  perf_event: ["perf_event"],
};

/** A caller's identity, as the runtime established it. */
export const Identity = z.object({
  /** A user name (`system:serviceaccount:bpfd:controller`, `uid:0`). */
  user: z.string(),
  /** How it was established: `unix-socket`, `token`, `in-process`. */
  via: z.string(),
  /** Unix socket callers: the kernel's credentials of the caller (SO_PEERCRED). */
  uid: z.optional(z.number()),
  gid: z.optional(z.number()),
  pid: z.optional(z.number()),
  /** Unix socket callers: their supplementary group ids (SO_PEERGROUPS), for file access checks. */
  gids: z.optional(z.array(z.number())),
  /** The groups the authenticator reported (TokenReview, token file); BpfPolicy rules name them. */
  groups: z.optional(z.array(z.string())),
  /** TCP readers (`list`, `get`): whether their authorization includes loading too; views show them values. */
  mayLoad: z.optional(z.boolean()),
});
export type Identity = z.infer<typeof Identity>;

/** A network namespace's identity: the device and inode of its nsfs file (unique while it lives). */
export const NetnsId = z.object({ dev: z.number(), ino: z.number() });
export type NetnsId = z.infer<typeof NetnsId>;

/** One attachment of a program to a hook, as bpfd records it. */
export const LinkRecord = z.object({
  /** bpfd's id for the attachment (stable across restarts; the kernel link id may be absent for tc). */
  id: PositiveInt,
  programId: ProgramId,
  attach: AttachSpec,
  /** The kernel's link id, for attachments that are BPF links (all but tc filters). */
  kernelLinkId: z.optional(PositiveInt),
  /** The interface index, for network hooks. */
  ifindex: z.optional(PositiveInt),
  /**
   * The namespace `attach.netns` named at attach. Every later use checks the path still names it, so a
   * `/proc/<pid>/ns/net` whose pid was reused is a namespace that is gone, never acted in.
   */
  netnsId: z.optional(NetnsId),
  /** tc filter identity, and whether bpfd created the clsact qdisc. */
  tc: z.optional(z.object({ handle: z.int(), priority: z.int(), qdiscCreated: z.boolean() })),
  /**
   * The extension (freplace) program that runs this link's program in a dispatcher slot, while several
   * programs share an XDP or tc hook (absent when the program is attached directly).
   */
  slotProgramId: z.optional(ProgramId),
  createdAt: z.string(),
  createdBy: Identity,
  /** Recorded before the kernel step and cleared after it, so a crash in between can be repaired. */
  pending: z.optional(z.boolean()),
});
export type LinkRecord = z.infer<typeof LinkRecord>;

/** A program bpfd loaded, as it records it. */
export const ProgramRecord = z.object({
  id: ProgramId,
  name: z.string(),
  type: ProgramType,
  tag: z.string(),
  bytecode: z.union([
    /**
     * `sha256`: of the object's content at load; a slot reload refuses the file if it changed (absent in
     * records from before it was kept: the first reload records it).
     */
    z.object({ path: z.string(), sha256: z.optional(z.string()) }),
    z.object({ image: z.object({ url: z.string(), digest: z.string() }) }),
  ]),
  /** The pinned program. */
  pinPath: z.string(),
  /** The directory of the maps this program uses (its own, or its map owner's). */
  mapPinPath: z.string(),
  maps: z.record(z.string(), z.string()),
  /** The program whose maps this one shares (absent when it owns its maps). */
  mapOwnerId: z.optional(ProgramId),
  globalData: z._default(z.record(z.string(), z.string()), {}),
  metadata: z._default(Metadata, {}),
  fnName: z.optional(z.string()),
  loadedAt: z.string(),
  loadedBy: Identity,
  /**
   * The BpfProgram `reconcile` loaded this program for. Only reconcile sets it (no request field does):
   * reconcile adopts and reports only programs that carry its owner here.
   */
  reconciledFor: z.optional(z.string()),
});
export type ProgramRecord = z.infer<typeof ProgramRecord>;

/** What the kernel says about a program (the fields `bpftool prog list` shows). */
export const KernelProgramInfo = z.object({
  id: ProgramId,
  type: z.string(),
  name: z.string(),
  tag: z.string(),
  loadedAt: z.string(),
  uid: z.int(),
  mapIds: z.array(z.int()),
  bytesXlated: z.int(),
  bytesJited: z.int(),
  verifiedInsns: z.int(),
  btfId: z.int(),
  runTimeNs: z.number(),
  runCount: z.number(),
});
export type KernelProgramInfo = z.infer<typeof KernelProgramInfo>;

/** One attachment of a program, as the kernel shows it (a BPF link, or an attachment without one). */
export const InventoryAttachment = z.object({
  /** Link type (xdp, tcx, cgroup, netns, tracing, perf_event, ...), or how it was found without a link. */
  kind: z.string(),
  linkId: z.optional(z.int()),
  attachType: z.optional(z.string()),
  iface: z.optional(z.string()),
  /** XDP mode when attached through netlink (native, skb, hw). */
  mode: z.optional(z.string()),
  /** The cgroup: its path under the cgroup2 mount, or its id (from a cgroup link). */
  cgroup: z.optional(z.string()),
  netnsIno: z.optional(z.int()),
  /** Tracepoint, kprobe function, uprobe file, or target program id of a tracing link. */
  target: z.optional(z.string()),
});
export type InventoryAttachment = z.infer<typeof InventoryAttachment>;

/** A process holding a program bpfd did not load, with its container and pod when it runs in one. */
export const InventoryHolder = z.object({
  pid: z.int(),
  comm: z.string(),
  containerId: z.optional(z.string()),
  podUid: z.optional(z.string()),
  /** namespace/name of the pod, when the UID or the container was found on this node. */
  pod: z.optional(z.string()),
  /** The container's name in that pod. */
  container: z.optional(z.string()),
});
export type InventoryHolder = z.infer<typeof InventoryHolder>;

/** A program as `get` and `list` show it: bpfd's record (when managed) and the kernel's view. */
export const ProgramView = z.object({
  id: ProgramId,
  managed: z.boolean(),
  /** Absent when a program bpfd manages is no longer in the kernel (unloaded behind its back). */
  kernel: z.optional(KernelProgramInfo),
  /**
   * `program.globalData` holds the values only for callers who may load programs (they could set them
   * anyway); everyone sees each variable's name and size here.
   */
  program: z.optional(ProgramRecord),
  globalData: z.optional(z.record(z.string(), z.object({ bytes: z.int() }))),
  links: z._default(z.array(LinkRecord), []),
  /** `list --all`, programs bpfd does not manage: where the kernel says they are attached. */
  attachments: z.optional(z.array(InventoryAttachment)),
  /** `list --all`, programs bpfd does not manage: the processes holding them (fds in /proc). */
  holders: z.optional(z.array(InventoryHolder)),
  /** The trace session whose bpftrace holds this program (it goes when the session ends). */
  session: z.optional(z.object({
    id: z.string(),
    startedBy: Identity,
    startedAt: z.string(),
    expiresAt: z.string(),
  })),
});
export type ProgramView = z.infer<typeof ProgramView>;

/** One program of a hook's chain, in run order (bpfd's or someone else's). */
export const ChainEntryView = z.object({
  position: z.int().check(z.minimum(0)),
  /** The program that runs: bpfd's program id for its own programs, the kernel's id for others'. */
  programId: ProgramId,
  name: z.string(),
  priority: z.int(),
  proceedOn: z.array(z.string()),
  managed: z.boolean(),
  linkId: z.optional(PositiveInt),
  /** The extension program that runs it in a dispatcher slot. */
  slotProgramId: z.optional(ProgramId),
});
export type ChainEntryView = z.infer<typeof ChainEntryView>;

/** A network hook bpfd has programs on, with everything that runs there in order. */
export const HookChainView = z.object({
  /** xdp:<netns>:<iface> or tc:<netns>:<iface>:<direction> (the hook's lock key). */
  hook: z.string(),
  type: z.enum(["xdp", "tc", "tcx"]),
  iface: z.string(),
  netns: z.optional(z.string()),
  direction: z.optional(Direction),
  /** How the chain runs: one program attached directly, a dispatcher (its program id), or TCX links. */
  dispatcherId: z.optional(ProgramId),
  chain: z.array(ChainEntryView),
});
export type HookChainView = z.infer<typeof HookChainView>;
