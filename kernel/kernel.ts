/**
 * The node's kernel, as functions see it through `ctx.kernel`: loads programs out of object files and
 * pins them with their maps under bpfd's bpffs, attaches them (one module per attach kind under
 * attach/), detaches, unloads, and enumerates what the kernel has. Every operation either completes or
 * leaves nothing behind. Failures are {@link KernelError}s; functions/_errors.ts turns them into answers.
 *
 * @example
 * ```ts
 * const kernel = new NodeKernel("/run/bpfd/fs");
 * await kernel.prepare();
 * const [program] = await kernel.load({ objectPath, programs: [{ name: "tp", type: "tracepoint" }], globalData: {} });
 * ```
 * @module
 */
import * as bpf from "../ffi/libbpf.ts";
import type { AttachSpec, HookChainView, LinkRecord, NetnsId, ProgramRecord } from "../model/schemas.ts";
import {
  ALONE,
  type Attachment,
  type HookChange,
  type HookContext,
  type HookKind,
  type HookMember,
  isSharedHook,
  type KernelParts,
  type NetworkAttach,
  type PlainAttach,
  type PlainKind,
} from "./attach/kind.ts";
import { kprobe } from "./attach/kprobe.ts";
import { perfEvent } from "./attach/perf_event.ts";
import { rawTracepoint } from "./attach/raw_tracepoint.ts";
import { tc } from "./attach/tc.ts";
import { tcx } from "./attach/tcx.ts";
import { tpBtf } from "./attach/tp_btf.ts";
import { tracepoint } from "./attach/tracepoint.ts";
import { tracing } from "./attach/tracing.ts";
import { uprobe } from "./attach/uprobe.ts";
import { xdp } from "./attach/xdp.ts";
import { TcChains } from "./chains/tc.ts";
import { TcxChains } from "./chains/tcx.ts";
import { XdpChains } from "./chains/xdp.ts";
import { allLinks, ProgramInfos } from "./inspect.ts";
import { type AttachmentScan, kernelAttachments } from "./attachments.ts";
import { type Held, scanHolders, type ScanOptions } from "./holders.ts";
import type { InventoryAttachment } from "../model/inventory.ts";
import { load, type LoadedProgram, type LoadPlan, programAlive, unload } from "./load.ts";
import { ifindexOf, netnsIdOf, netnsStillSame, sameNetnsAs } from "./netns.ts";
import { notFound } from "./errors.ts";
import { Pins } from "./pins.ts";

/** The attach kinds on shared network hooks, by type. */
const HOOK_KINDS: Record<NetworkAttach["type"], HookKind<NetworkAttach>> = { xdp, tc, tcx };

/** The attach kinds that make one pinned BPF link, by type. */
const PLAIN_KINDS: Record<PlainAttach["type"], PlainKind<PlainAttach>> = {
  tracepoint,
  kprobe,
  kretprobe: kprobe,
  uprobe,
  uretprobe: uprobe,
  fentry: tracing,
  fexit: tracing,
  raw_tracepoint: rawTracepoint,
  tp_btf: tpBtf,
  perf_event: perfEvent,
};

/** The node's kernel: programs, maps and links pinned under `bpffs`. */
export class NodeKernel implements KernelParts {
  readonly pins: Pins;
  /** XDP chains, kept where libxdp keeps them. */
  readonly xdp = new XdpChains();
  /** TCX chains, ordered by the kernel. */
  readonly tcx = new TcxChains();
  /** tc chains (kernels without TCX): one cls_bpf filter, a dispatcher when several programs share it. */
  readonly tc: TcChains;
  #infos = new ProgramInfos();

  constructor(readonly bpffs: string, readonly groupId?: number) {
    this.pins = new Pins(bpffs, groupId);
    this.tc = new TcChains(`${bpffs}/tc-dispatchers`, (id) => this.pins.program(id));
  }

  /** Where programs are pinned. */
  get progDir(): string {
    return this.pins.progDir;
  }

  /** Creates the pin directories (map pins readable by the bpfd group). */
  prepare(): Promise<void> {
    return this.pins.prepare();
  }

  /** Where program `id` is pinned. */
  progPin(id: number): string {
    return this.pins.program(id);
  }

  /** Where bpfd link `linkId` is pinned. */
  linkPin(linkId: number): string {
    return this.pins.link(linkId);
  }

  /** Loads the named programs of an object file, pins them and their maps. All or nothing. */
  load(plan: LoadPlan): LoadedProgram[] {
    return load(this.pins, plan);
  }

  /** Unpins a program (the kernel frees it once no link holds it) and the map pins nobody else uses. */
  unload(programId: number, unusedMapPins: string[]): void {
    unload(this.pins, programId, unusedMapPins);
  }

  /** Removes map pins, and their directories once empty. */
  removeMapPins(paths: string[]): void {
    this.pins.removeMapPins(paths);
  }

  /** Whether the program pinned for `id` is still that program. */
  programAlive(id: number): boolean {
    return programAlive(this.pins, id);
  }

  /** Attaches program `programId` as `spec` says (not a shared hook) and pins the link as `linkId`. */
  async attach(programId: number, linkId: number, spec: PlainAttach): Promise<Attachment> {
    const progFd = bpf.objGet(this.pins.program(programId));
    try {
      return this.pins.pinLink(linkId, await PLAIN_KINDS[spec.type].attach(progFd, spec));
    } finally {
      bpf.closeFd(progFd);
    }
  }

  /**
   * Attaches `program` as `link` (its `attach` a network hook) in its place by priority among bpfd's
   * `hook.peers` (and beside other managers' programs). All or nothing: on failure the hook runs what
   * it ran before.
   */
  attachToHook(
    link: LinkRecord & { attach: NetworkAttach },
    program: ProgramRecord,
    hook: HookContext,
  ): Promise<HookChange> | HookChange {
    return HOOK_KINDS[link.attach.type].attach(this, {
      link,
      spec: link.attach,
      program,
      hook: inSameNetnsOrGone(link, hook),
    });
  }

  /** Moves an attached link to its new place after its priority or proceed-on changed (`link.attach`). */
  rechain(
    link: LinkRecord & { attach: NetworkAttach },
    program: ProgramRecord,
    hook: HookContext,
  ): Promise<HookChange> | HookChange {
    return HOOK_KINDS[link.attach.type].move(this, {
      link,
      spec: link.attach,
      program,
      hook: inSameNetnsOrGone(link, hook),
    });
  }

  /**
   * Removes an attachment; a link already gone (detached behind bpfd's back) is not an error. On a
   * shared hook `hook.peers` (default: none) stay, in order; returns the kernel side of the peers it
   * moved. For a tc filter, `releaseQdisc` says bpfd has no other filter on that interface: the clsact
   * qdisc bpfd created then goes too, unless someone else's filters are on it.
   */
  async detach(
    link: LinkRecord,
    opts: { hook?: HookContext; releaseQdisc?: boolean } = {},
  ): Promise<Map<number, Attachment>> {
    const { hook = ALONE, releaseQdisc = false } = opts;
    const spec = link.attach;
    if (isSharedHook(spec)) {
      const here = inSameNetns({ ...link, attach: spec }, hook);
      const op = { link, spec, hook: here ?? ALONE, releaseQdisc, netnsGone: !here };
      return await HOOK_KINDS[spec.type].detach(this, op);
    }
    await PLAIN_KINDS[spec.type].detach(this, link);
    return new Map();
  }

  /** Detaches the link pinned as `linkId` and removes the pin; a missing pin is not an error. */
  releaseLink(linkId: number): void {
    this.pins.releaseLink(linkId);
  }

  /** The identity of the network namespace `spec` names now (undefined: the runtime's own). */
  netnsOf(spec: AttachSpec): NetnsId | undefined {
    return "netns" in spec ? netnsIdOf(spec.netns) : undefined;
  }

  /** Whether the attachment is still in the kernel (and its namespace the one it was made in). */
  attachmentAlive(link: LinkRecord): boolean {
    if (!netnsStillSame(link)) return false;
    const spec = link.attach;
    if (isSharedHook(spec)) return HOOK_KINDS[spec.type].alive(this, link, spec);
    return PLAIN_KINDS[spec.type].alive(this, link);
  }

  /** The hook's chain in run order, bpfd's `members` (all its links on the hook) marked as managed. */
  hookChain(spec: NetworkAttach, members: HookMember[]): HookChainView {
    const hook = spec.type === "xdp"
      ? `xdp:${spec.netns ?? ""}:${spec.iface}`
      : `tc:${spec.netns ?? ""}:${spec.iface}:${spec.direction}`;
    const base = {
      hook,
      type: spec.type,
      iface: spec.iface,
      ...(spec.netns ? { netns: spec.netns } : {}),
      ...(spec.type !== "xdp" ? { direction: spec.direction } : {}),
    };
    let ifindex: number;
    let here: HookMember[];
    try {
      ifindex = ifindexOf(spec.iface, spec.netns);
      const id = netnsIdOf(spec.netns);
      here = members.filter((m) => sameNetnsAs(m.link, id)); // others were in a namespace now gone
    } catch {
      return { ...base, chain: [] };
    }
    return { ...base, ...HOOK_KINDS[spec.type].chain(this, { spec, ifindex, members: here }) };
  }

  /** Every program in the kernel, with what the kernel says about it (the set `bpftool prog list` shows). */
  allPrograms(): bpf.ProgramInfo[] {
    return this.#infos.all();
  }

  /** What the kernel says about program `id`, or undefined if it is gone. */
  programInfo(id: number): bpf.ProgramInfo | undefined {
    return this.#infos.get(id);
  }

  /** What the kernel says about each of `ids` still loaded (kernel/inspect.ts `ProgramInfos.many`). */
  programInfos(ids: Iterable<number>): Map<number, bpf.ProgramInfo> {
    return this.#infos.many(ids);
  }

  /** Every BPF link in the kernel. */
  allLinks(): bpf.LinkInfoValue[] {
    return allLinks();
  }

  /** Where each program is attached, as the kernel reports it (kernel/attachments.ts), by program id. */
  attachments(scan?: AttachmentScan): Map<number, InventoryAttachment[]> {
    return kernelAttachments(scan);
  }

  /**
   * The processes holding programs and the perf events running them (kernel/holders.ts), by program id;
   * not this process (it holds bpfd's programs).
   */
  holders(scan?: ScanOptions): Promise<Held> {
    return scanHolders({ skipPids: [Deno.pid], ...scan });
  }

  /** Pins under bpfd's directories: program ids, link ids and map directories found on the bpffs. */
  pinned(): Promise<{ programs: number[]; links: number[]; mapDirs: string[] }> {
    return this.pins.list();
  }
}

/**
 * `hook` for a change on `link`'s hook, with the peers recorded in another namespace left out (theirs is
 * gone); undefined when `link`'s namespace path no longer names the namespace it recorded, or none: then
 * nothing may be done there.
 */
function inSameNetns(
  link: LinkRecord & { attach: NetworkAttach },
  hook: HookContext,
): HookContext | undefined {
  let id: NetnsId | undefined;
  try {
    id = netnsIdOf(link.attach.netns);
  } catch {
    return undefined; // the namespace is gone
  }
  if (!sameNetnsAs(link, id)) return undefined;
  return { ...hook, peers: hook.peers.filter((p) => sameNetnsAs(p.link, id)) };
}

/** {@link inSameNetns}, or not_found for the namespace (attach, move: never act in another one). */
function inSameNetnsOrGone(link: LinkRecord & { attach: NetworkAttach }, hook: HookContext): HookContext {
  const here = inSameNetns(link, hook);
  if (!here) throw notFound("netns", link.attach.netns!);
  return here;
}
