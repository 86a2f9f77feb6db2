/**
 * What an attach kind module provides, and the types they share. Network hooks (xdp, tc, tcx) are
 * shared: a change there places the program among bpfd's other links on the hook. Every other kind is a
 * plain BPF link that bpfd pins. The kernel facade (kernel/kernel.ts) keeps one registry of each.
 *
 * @example
 * ```ts
 * export const tracepoint: PlainKind<TracepointAttach> = { ...pinnedLink, attach: attachTracepoint };
 * ```
 * @module
 */
import type { AttachSpec, HookChainView, LinkRecord, ProgramRecord } from "../../model/schemas.ts";
import type { ChainMember } from "../chains/chain.ts";
import type { ReloadPlan } from "../chains/dispatcher.ts";
import type { TcChains } from "../chains/tc.ts";
import type { TcxChains } from "../chains/tcx.ts";
import type { XdpChains } from "../chains/xdp.ts";
import type { Pins } from "../pins.ts";

/** The kernel side of an attachment, to be recorded. */
export type Attachment = Pick<LinkRecord, "kernelLinkId" | "ifindex" | "tc" | "slotProgramId">;

/** A network hook several programs can share: XDP on an interface, tc/TCX on its ingress or egress. */
export type NetworkAttach = Extract<AttachSpec, { type: "xdp" | "tc" | "tcx" }>;

/** Every other attachment: one program, one pinned BPF link. */
export type PlainAttach = Exclude<AttachSpec, NetworkAttach>;

/** A link and its program, as bpfd records them. */
export interface HookMember {
  link: LinkRecord;
  program: ProgramRecord;
}

/** What a change on a shared hook needs to know: bpfd's other links there, how to reload a program. */
export interface HookContext {
  /** bpfd's other links on the same hook (not the one being attached, changed or detached). */
  peers: HookMember[];
  /** The object file and settings to load a program again as a dispatcher slot extension. */
  reload(program: ProgramRecord): Promise<ReloadPlan>;
}

/** What a change on a shared hook did: the kernel side of the link, and of the peers it moved. */
export interface HookChange {
  self: Attachment;
  peers: Map<number, Attachment>;
}

/** A hook with no other links of bpfd's on it (recovery, or a caller without records). */
export const ALONE: HookContext = {
  peers: [],
  reload: (program) => Promise.reject(new Error(`program ${program.id} cannot be reloaded here`)),
};

/** The parts of the node's kernel an attach kind works with. */
export interface KernelParts {
  pins: Pins;
  xdp: XdpChains;
  tc: TcChains;
  tcx: TcxChains;
}

/** One change on a shared hook: the link (its `attach` is `spec`), its program, the others there. */
export interface HookOp<S extends NetworkAttach> {
  link: LinkRecord;
  spec: S;
  program: ProgramRecord;
  hook: HookContext;
}

/**
 * Taking a link off a shared hook; `releaseQdisc`: bpfd has no other tc filter on the interface;
 * `netnsGone`: the link's namespace path names no longer the namespace it was attached in (nothing may be
 * done in the namespace; only what bpfd holds itself, like a pinned link, is released).
 */
export interface DetachOp<S extends NetworkAttach> {
  link: LinkRecord;
  spec: S;
  hook: HookContext;
  releaseQdisc: boolean;
  netnsGone?: boolean;
}

/** An attach kind on a shared network hook. */
export interface HookKind<S extends NetworkAttach> {
  /** Attaches `op.link` in its place by priority. All or nothing. */
  attach(k: KernelParts, op: HookOp<S>): Promise<HookChange> | HookChange;
  /** Moves an attached link to its place after its priority or proceed-on changed. */
  move(k: KernelParts, op: HookOp<S>): Promise<HookChange> | HookChange;
  /** Takes a link off the hook; the peers stay, in order. Returns the kernel side of the peers it moved. */
  detach(k: KernelParts, op: DetachOp<S>): Promise<Map<number, Attachment>> | Map<number, Attachment>;
  /** Whether the attachment is still in the kernel. */
  alive(k: KernelParts, link: LinkRecord, spec: S): boolean;
  /** The hook's chain in run order, bpfd's `members` marked as managed. */
  chain(
    k: KernelParts,
    hook: { spec: S; ifindex: number; members: HookMember[] },
  ): Pick<HookChainView, "dispatcherId" | "chain">;
}

/** An attach kind that makes one BPF link, which bpfd pins. */
export interface PlainKind<S extends PlainAttach> {
  /** Attaches the program `progFd` as `spec` says; returns the new link's fd. */
  attach(progFd: number, spec: S): Promise<number>;
  /** Detaches the link pinned as `link.id`; one already gone is not an error. */
  detach(k: KernelParts, link: LinkRecord): Promise<void> | void;
  /** Whether the attachment is still in the kernel. */
  alive(k: KernelParts, link: LinkRecord): boolean;
}

/** detach and alive of a kind whose attachment is the pinned link. */
export const pinnedLink: Pick<PlainKind<PlainAttach>, "detach" | "alive"> = {
  detach: (k, link) => k.pins.releaseLink(link.id),
  alive: (k, link) => k.pins.linkAlive(link.id, link.kernelLinkId),
};

/** Every program id of bpfd's on a hook: its links' programs and their slot extensions. */
export function knownIds(links: LinkRecord[]): Set<number> {
  const ids = new Set<number>();
  for (const link of links) {
    ids.add(link.programId);
    if (link.slotProgramId) ids.add(link.slotProgramId);
  }
  return ids;
}

/** Whether an attachment is on a network hook that several programs can share. */
export function isSharedHook(spec: AttachSpec): spec is NetworkAttach {
  return spec.type === "xdp" || spec.type === "tc" || spec.type === "tcx";
}

/** The attach spec of a link on a shared hook (peers are only ever such links). */
export function hookSpec(link: LinkRecord): NetworkAttach {
  if (!isSharedHook(link.attach)) throw new Error(`link ${link.id} is not on a network hook`);
  return link.attach;
}

/** A link on an XDP or tc hook as the chain managers see it. */
export function chainMember({ link, program }: HookMember, reload: HookContext["reload"]): ChainMember {
  const spec = hookSpec(link);
  return {
    linkId: link.id,
    programId: link.programId,
    name: program.name,
    priority: spec.priority,
    proceedOn: spec.proceedOn,
    slotProgramId: link.slotProgramId,
    reload: () => reload(program),
  };
}

/** The kernel side of each peer after a change, `at(link)` giving one peer's. */
export function placed(peers: HookMember[], at: (link: LinkRecord) => Attachment): Map<number, Attachment> {
  return new Map(peers.map(({ link }) => [link.id, at(link)]));
}
