/**
 * The node's kernel, as functions see it through `ctx.kernel`: loads programs out of object files and
 * pins them with their maps under bpfd's bpffs, attaches them to hooks and pins the links, detaches,
 * unloads, and enumerates what the kernel has. Every operation either completes or leaves nothing
 * behind: a failure part-way undoes the steps already taken.
 *
 * @module
 */
import {
  BpfAttachType,
  BpfProgType,
  PERF_TYPE_TRACEPOINT,
  PerfEventAttr,
  TcAttachPoint,
} from "../ffi/abi.ts";
import * as bpf from "../ffi/libbpf.ts";
import { closeFd, ifNameToIndex, inNetns, perfEventOpen, SysError } from "../ffi/libc.ts";
import { cstring } from "../ffi/lazy.ts";
import { BpfdError, conflict, invalid, notFound } from "../functions/_errors.ts";
import type {
  AttachSpec,
  HookChainView,
  LinkRecord,
  ProgramRecord,
  ProgramSpec,
  ProgramType,
} from "../model/schemas.ts";
import type { ReloadPlan } from "./chains/dispatcher.ts";
import { TcChains, type TcHook, type TcMember } from "./chains/tc.ts";
import { TcxChains, type TcxMember } from "./chains/tcx.ts";
import { XdpChains, type XdpMember } from "./chains/xdp.ts";
import { ElfError, functionOffset } from "./elf.ts";
import { ensureTracefs } from "./mounts.ts";

/** What loading one program produced. */
export interface LoadedProgram {
  id: number;
  name: string;
  tag: string;
  pinPath: string;
  mapPinPath: string;
  maps: Record<string, string>;
}

/** A load request, already validated. */
export interface LoadPlan {
  objectPath: string;
  /** The path to name in errors when `objectPath` is a checked `/proc/self/fd/N` (kernel/files.ts). */
  shownPath?: string;
  programs: ProgramSpec[];
  globalData: Record<string, Uint8Array>;
  /** Maps to reuse instead of creating: name → pin path (the map owner's maps). */
  sharedMaps?: Record<string, string>;
  /** The directory of the shared maps, reported as mapPinPath. */
  sharedMapDir?: string;
}

/** The kernel side of an attachment, to be recorded. */
export type Attachment = Pick<LinkRecord, "kernelLinkId" | "ifindex" | "tc" | "slotProgramId">;

/** A network hook several programs can share: XDP on an interface, tc/TCX on its ingress or egress. */
export type NetworkAttach = Extract<AttachSpec, { type: "xdp" | "tc" | "tcx" }>;

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

const NO_RELOAD = (program: ProgramRecord): Promise<ReloadPlan> =>
  Promise.reject(new Error(`program ${program.id} cannot be reloaded here`));

const LOAD_TYPES: Record<ProgramType, { progType: number; attachType?: number }> = {
  xdp: { progType: BpfProgType.XDP, attachType: BpfAttachType.XDP },
  tc: { progType: BpfProgType.SCHED_CLS },
  tcx: { progType: BpfProgType.SCHED_CLS },
  tracepoint: { progType: BpfProgType.TRACEPOINT },
  kprobe: { progType: BpfProgType.KPROBE },
  kretprobe: { progType: BpfProgType.KPROBE },
  uprobe: { progType: BpfProgType.KPROBE },
  uretprobe: { progType: BpfProgType.KPROBE },
  fentry: { progType: BpfProgType.TRACING, attachType: BpfAttachType.TRACE_FENTRY },
  fexit: { progType: BpfProgType.TRACING, attachType: BpfAttachType.TRACE_FEXIT },
};

const TRAMPOLINE_TYPES = new Set<ProgramType>(["fentry", "fexit"]);

/** Turns a libbpf failure into the API's answer: 422 with errno, libbpf's messages and verifier log. */
export function kernelRefused(err: unknown, what: string, hint?: string): BpfdError {
  if (err instanceof BpfdError) return err;
  if (err instanceof bpf.LibbpfError || err instanceof SysError) {
    const log = err instanceof bpf.LibbpfError ? err : undefined;
    return new BpfdError(
      422,
      "kernel_refused",
      `the kernel refused to ${what}: ${err.code}${hint ? ` — ${hint}` : ""}`,
      {
        errno: err.code,
        ...(log?.libbpfLog.length ? { libbpfLog: log.libbpfLog } : {}),
        ...(log?.verifierLog ? { verifierLog: log.verifierLog } : {}),
      },
    );
  }
  throw err;
}

/** Library directories searched for a uprobe target given by name (`libc.so.6`). */
const LIBRARY_DIRS = [
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib64",
  "/usr/lib64",
  "/lib",
  "/usr/lib",
];

/** The node's kernel: programs, maps and links pinned under `bpffs`. */
export class NodeKernel {
  readonly progDir: string;
  readonly mapDir: string;
  readonly linkDir: string;
  /** XDP chains, kept where libxdp keeps them. */
  readonly xdp = new XdpChains();
  /** TCX chains, ordered by the kernel. */
  readonly tcx = new TcxChains();
  /** tc chains (kernels without TCX): one cls_bpf filter, a dispatcher when several programs share it. */
  readonly tc: TcChains;

  constructor(readonly bpffs: string, readonly groupId?: number) {
    this.tc = new TcChains(`${bpffs}/tc-dispatchers`, (id) => this.progPin(id));
    this.progDir = `${bpffs}/progs`;
    this.mapDir = `${bpffs}/maps`;
    this.linkDir = `${bpffs}/links`;
  }

  /** Creates the pin directories (map pins readable by the bpfd group). */
  async prepare(): Promise<void> {
    for (const dir of [this.progDir, this.mapDir, this.linkDir]) await Deno.mkdir(dir, { recursive: true });
    await this.#share(this.bpffs, 0o750);
    await this.#share(this.mapDir, 0o750);
  }

  async #share(path: string, mode: number): Promise<void> {
    if (this.groupId === undefined) return;
    await Deno.chown(path, 0, this.groupId);
    await Deno.chmod(path, mode);
  }

  progPin(id: number): string {
    return `${this.progDir}/${id}`;
  }

  linkPin(linkId: number): string {
    return `${this.linkDir}/${linkId}`;
  }

  // ---- load and unload ------------------------------------------------------------------------

  /** Loads the named programs of an object file, pins them and their maps. All or nothing. */
  async load(plan: LoadPlan): Promise<LoadedProgram[]> {
    let obj: bpf.BpfObject;
    try {
      obj = bpf.BpfObject.open(plan.objectPath);
    } catch (err) {
      throw new BpfdError(
        400,
        "invalid_object",
        `bytecode.path: ${plan.shownPath ?? plan.objectPath} is not a BPF object file`,
        {
          field: "bytecode.path",
          ...(err instanceof bpf.LibbpfError ? { errno: err.code, libbpfLog: err.libbpfLog } : {}),
        },
      );
    }
    const pinned: string[] = [];
    try {
      this.#configure(obj, plan);
      try {
        obj.load();
      } catch (err) {
        const trampoline = plan.programs.some((p) => TRAMPOLINE_TYPES.has(p.type));
        const hint = trampoline && err instanceof bpf.LibbpfError && err.code === "EPERM"
          ? "this kernel does not allow trampoline programs (fentry/fexit/freplace are refused before verification)"
          : undefined;
        throw kernelRefused(err, `load ${plan.programs.map((p) => p.name).join(", ")}`, hint);
      }
      try {
        return await this.#pinAll(obj, plan, pinned);
      } catch (err) {
        throw kernelRefused(err, "pin the loaded programs and maps");
      }
    } catch (err) {
      for (const path of pinned.reverse()) await removePin(path);
      throw err;
    } finally {
      obj.close();
    }
  }

  #configure(obj: bpf.BpfObject, plan: LoadPlan): void {
    const inObject = new Map(obj.programs().map((p) => [p.name, p]));
    plan.programs.forEach((spec, i) => {
      const found = inObject.get(spec.name);
      if (!found) {
        throw notFound("program", spec.name, {
          field: `programs.${i}.name`,
          available: [...inObject.keys()].join(", "),
        });
      }
      const want = LOAD_TYPES[spec.type];
      if (found.progType !== 0 && found.progType !== want.progType) {
        throw invalid(
          `programs.${i}.type`,
          `program ${spec.name} is in section "${found.section}", which is not a ${spec.type} program`,
        );
      }
    });
    const wanted = new Set(plan.programs.map((p) => p.name));
    for (const p of inObject.values()) obj.setAutoload(p.name, wanted.has(p.name));
    for (const spec of plan.programs) {
      const want = LOAD_TYPES[spec.type];
      obj.setProgramType(spec.name, want.progType, want.attachType);
      if (spec.fnName) obj.setAttachTarget(spec.name, spec.fnName);
    }
    const globals = obj.globals();
    for (const [name, value] of Object.entries(plan.globalData)) {
      const variable = globals.find((g) => g.name === name);
      if (!variable) {
        const known = globals.map((g) => g.name).join(", ") || "none";
        throw invalid(`globalData.${name}`, `no global variable ${name} in the object (it has: ${known})`);
      }
      if (variable.size !== value.length) {
        throw invalid(
          `globalData.${name}`,
          `${name} is ${variable.size} bytes, the value is ${value.length}`,
        );
      }
      obj.setGlobal(variable, value);
    }
    for (const map of obj.maps()) {
      const shared = plan.sharedMaps?.[map.name];
      if (shared && !map.internal) {
        bpf.withFd(bpf.objGet(shared), (fd) => obj.reuseMapFd(map.name, fd));
      }
    }
  }

  async #pinAll(obj: bpf.BpfObject, plan: LoadPlan, pinned: string[]): Promise<LoadedProgram[]> {
    const infos = plan.programs.map((spec) => ({ spec, info: bpf.programInfo(obj.programFd(spec.name)) }));
    for (const { spec, info } of infos) {
      const path = this.progPin(info.id);
      bpf.objPin(obj.programFd(spec.name), path);
      pinned.push(path);
    }
    // The group's own maps live under the first program's id; shared ones stay where their owner put them.
    const ownDir = `${this.mapDir}/${infos[0].info.id}`;
    const maps: Record<string, string> = {};
    for (const map of obj.maps()) {
      const shared = plan.sharedMaps?.[map.name];
      if (shared && !map.internal) {
        maps[map.name] = shared;
        continue;
      }
      if (!pinned.includes(ownDir)) {
        await Deno.mkdir(ownDir, { recursive: true });
        pinned.unshift(ownDir); // removed last, after the pins in it
        await this.#share(ownDir, 0o750);
      }
      const path = `${ownDir}/${map.name.replaceAll(".", "_")}`; // bpffs refuses dots in names, as libbpf knows
      bpf.objPin(obj.mapFd(map.name), path);
      pinned.push(path);
      await this.#share(path, 0o640);
      maps[map.name] = path;
    }
    const mapPinPath = plan.sharedMapDir ?? ownDir;
    return infos.map(({ spec, info }) => ({
      id: info.id,
      name: spec.name,
      tag: info.tag,
      pinPath: this.progPin(info.id),
      mapPinPath,
      maps,
    }));
  }

  /** Unpins a program (the kernel frees it once no link holds it) and the map pins nobody else uses. */
  async unload(programId: number, unusedMapPins: string[]): Promise<void> {
    await removePin(this.progPin(programId));
    await this.removeMapPins(unusedMapPins);
  }

  /** Removes map pins, and their directories once empty. */
  async removeMapPins(paths: string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const path of paths) {
      await removePin(path);
      dirs.add(path.slice(0, path.lastIndexOf("/")));
    }
    for (const dir of dirs) {
      if (dir.startsWith(`${this.mapDir}/`)) await Deno.remove(dir).catch(() => {}); // only when empty
    }
  }

  /** Whether the program pinned for `id` is still that program. */
  programAlive(id: number): boolean {
    try {
      return bpf.withFd(bpf.objGet(this.progPin(id)), (fd) => bpf.programInfo(fd).id === id);
    } catch {
      return false;
    }
  }

  // ---- attach and detach ------------------------------------------------------------------------

  /** Attaches program `programId` as `spec` says and pins the link as `linkId`. All or nothing. */
  async attach(programId: number, linkId: number, spec: AttachSpec): Promise<Attachment> {
    const progFd = bpf.objGet(this.progPin(programId));
    try {
      switch (spec.type) {
        case "xdp":
        case "tcx": {
          const program = this.#bareRecord(programId, spec);
          return (await this.attachToHook(program, linkId, spec, { peers: [], reload: NO_RELOAD })).self;
        }
        case "tc":
          return this.#attachTcFilter(progFd, linkId, spec);
        case "tracepoint":
          return this.#pinLink(linkId, await this.#attachTracepoint(progFd, spec.tracepoint));
        case "kprobe":
        case "kretprobe":
          return this.#pinLink(linkId, await this.#attachKprobe(progFd, spec));
        case "uprobe":
        case "uretprobe":
          return this.#pinLink(linkId, await this.#attachUprobe(progFd, spec));
        case "fentry":
        case "fexit":
          return this.#pinLink(linkId, this.#attachTracing(progFd, spec.type));
      }
    } finally {
      closeFd(progFd);
    }
  }

  /** Pins a fresh link fd; if pinning fails the fd is closed, which destroys the link. */
  #pinLink(linkId: number, linkFd: number, extra: Attachment = {}): Attachment {
    try {
      const info = bpf.linkInfo(linkFd);
      bpf.objPin(linkFd, this.linkPin(linkId));
      return { ...extra, kernelLinkId: info.id };
    } finally {
      closeFd(linkFd);
    }
  }

  #ifindex(iface: string, netns?: string): number {
    let ifindex: number;
    try {
      ifindex = inNetns(netnsPath(netns), () => ifNameToIndex(iface));
    } catch (err) {
      if (err instanceof SysError && err.code === "ENOENT") {
        throw notFound("netns", netns!, { field: "attach.netns" });
      }
      throw err;
    }
    if (!ifindex) {
      throw notFound("interface", iface, { field: "attach.iface", ...(netns ? { netns } : {}) });
    }
    return ifindex;
  }

  /** A program record with what the hook managers need, for callers that have none at hand. */
  #bareRecord(programId: number, spec: AttachSpec): ProgramRecord {
    const name = this.programInfo(programId)?.name ?? "";
    return {
      id: programId,
      name,
      type: spec.type as ProgramType,
      tag: "",
      bytecode: { path: "" },
      pinPath: this.progPin(programId),
      mapPinPath: "",
      maps: {},
      globalData: {},
      metadata: {},
      loadedAt: "",
      loadedBy: { user: "", via: "" },
    };
  }

  /**
   * Attaches `program` to a hook others may share, in its place by priority among bpfd's `hook.peers`
   * (and beside other managers' programs). All or nothing: on failure the hook runs what it ran before.
   */
  async attachToHook(
    program: ProgramRecord,
    linkId: number,
    spec: NetworkAttach,
    hook: HookContext,
  ): Promise<HookChange> {
    const link: LinkRecord = {
      id: linkId,
      programId: program.id,
      attach: spec,
      createdAt: "",
      createdBy: { user: "", via: "" },
    };
    return await this.#changeHook(link, spec, hook, "attach", program);
  }

  /** Moves an attached link to its new place after its priority or proceed-on changed (`link.attach`). */
  async rechain(link: LinkRecord, program: ProgramRecord, hook: HookContext): Promise<HookChange> {
    const spec = link.attach as NetworkAttach;
    if (spec.type === "tc" && !tcPeers(hook).length) {
      return { self: this.#moveTcFilter(link, spec), peers: new Map() };
    }
    return await this.#changeHook(link, spec, hook, "move", program);
  }

  async #changeHook(
    link: LinkRecord,
    spec: NetworkAttach,
    hook: HookContext,
    change: "attach" | "move",
    record?: ProgramRecord,
  ): Promise<HookChange> {
    const ifindex = this.#ifindex(spec.iface, spec.netns);
    const netns = netnsPath(spec.netns);
    if (spec.type === "xdp") {
      const program = record ?? hook.peers.find((p) => p.program.id === link.programId)?.program ??
        this.#bareRecord(link.programId, spec);
      const all: HookMember[] = [...hook.peers, { link, program }];
      const placement = await this.#xdpApply(spec, ifindex, all, hook, knownIds(all));
      return {
        self: { ifindex, slotProgramId: placement.get(link.id)?.slotProgramId },
        peers: new Map(
          hook.peers.map((
            { link: l },
          ) => [l.id, { ifindex, slotProgramId: placement.get(l.id)?.slotProgramId }]),
        ),
      };
    }
    if (spec.type === "tcx") {
      const thook = { iface: spec.iface, ifindex, netns, direction: spec.direction };
      const name = record?.name ?? this.programInfo(link.programId)?.name ?? "";
      const member: TcxMember = {
        linkId: link.id,
        programId: link.programId,
        name,
        priority: spec.priority,
        linkPin: this.linkPin(link.id),
      };
      const peers = hook.peers.map(({ link: l, program }) => tcxMember(this, l, program));
      const progFd = bpf.objGet(this.progPin(link.programId));
      let linkFd: number;
      try {
        if (change === "move") {
          linkFd = bpf.withFd(
            bpf.objGet(this.linkPin(link.id)),
            (oldLinkFd) => this.tcx.move(thook, progFd, member, peers, oldLinkFd),
          );
        } else {
          linkFd = this.tcx.attach(thook, progFd, member, peers);
        }
      } catch (err) {
        const hint = err instanceof bpf.LibbpfError && err.code === "EINVAL"
          ? "kernels before 6.6 have no TCX; attach as type tc"
          : undefined;
        throw kernelRefused(err, `attach TCX ${spec.direction} to ${spec.iface}`, hint);
      } finally {
        closeFd(progFd);
      }
      if (change === "move") await removePin(this.linkPin(link.id));
      return { self: this.#pinLink(link.id, linkFd, { ifindex }), peers: new Map() };
    }
    const peers = tcPeers(hook);
    if (!peers.length) {
      // Alone on the hook: a plain cls_bpf filter, no dispatcher.
      const progFd = bpf.objGet(this.progPin(link.programId));
      try {
        return { self: this.#attachTcFilter(progFd, link.id, spec), peers: new Map() };
      } finally {
        closeFd(progFd);
      }
    }
    const filter = peers[0].link.tc!;
    const program = record ?? this.#bareRecord(link.programId, spec);
    const placement = await this.#tcApply(spec, ifindex, filter, [...peers, { link, program }], hook);
    return {
      self: {
        ifindex,
        tc: { handle: filter.handle, priority: filter.priority, qdiscCreated: false },
        slotProgramId: placement.get(link.id)?.slotProgramId,
      },
      peers: new Map(
        peers.map((
          { link: l },
        ) => [l.id, { ifindex, tc: l.tc, slotProgramId: placement.get(l.id)?.slotProgramId }]),
      ),
    };
  }

  #tcHook(
    spec: Extract<AttachSpec, { type: "tc" }>,
    ifindex: number,
    filter: { handle: number; priority: number },
  ): TcHook {
    return { iface: spec.iface, ifindex, netns: netnsPath(spec.netns), direction: spec.direction, filter };
  }

  async #tcApply(
    spec: Extract<AttachSpec, { type: "tc" }>,
    ifindex: number,
    filter: { handle: number; priority: number },
    members: HookMember[],
    hook: Pick<HookContext, "reload">,
  ) {
    try {
      return await this.tc.apply(
        this.#tcHook(spec, ifindex, filter),
        members.map((m) => chainMember(m, hook.reload)),
      );
    } catch (err) {
      throw kernelRefused(err, `attach tc ${spec.direction} to ${spec.iface}`);
    }
  }

  async #xdpApply(
    spec: Extract<AttachSpec, { type: "xdp" }>,
    ifindex: number,
    members: HookMember[],
    hook: Pick<HookContext, "reload">,
    known: Set<number>,
  ) {
    const xhook = { iface: spec.iface, ifindex, netns: netnsPath(spec.netns), mode: spec.mode };
    try {
      return await this.xdp.apply(xhook, members.map((m) => chainMember(m, hook.reload)), known);
    } catch (err) {
      throw kernelRefused(err, `attach XDP (${spec.mode}) to ${spec.iface}`);
    }
  }

  /**
   * Takes `link` out of its hook's chain; `hook.peers` stay, in order (XDP: the dispatcher is rebuilt
   * without it, or the last one left runs directly). Returns the kernel side of the peers it moved.
   */
  async detachFromHook(
    link: LinkRecord,
    hook: HookContext,
    releaseQdisc = false,
  ): Promise<Map<number, Attachment>> {
    if (link.attach.type === "tc" && link.tc && tcPeers(hook).length) {
      const spec = link.attach;
      let ifindex: number;
      try {
        ifindex = this.#ifindex(spec.iface, spec.netns);
      } catch {
        return new Map();
      }
      const placement = await this.#tcApply(spec, ifindex, link.tc, tcPeers(hook), hook);
      return new Map(
        tcPeers(hook).map((
          { link: l },
        ) => [l.id, { ifindex, tc: l.tc, slotProgramId: placement.get(l.id)?.slotProgramId }]),
      );
    }
    if (link.attach.type !== "xdp") {
      await this.detach(link, releaseQdisc);
      return new Map();
    }
    const spec = link.attach;
    let ifindex: number;
    try {
      ifindex = this.#ifindex(spec.iface, spec.netns);
    } catch {
      return new Map(); // the interface or namespace is gone, and its XDP programs with it
    }
    const placement = await this.#xdpApply(
      spec,
      ifindex,
      hook.peers,
      hook,
      knownIds([...hook.peers, {
        link,
        program: this.#bareRecord(link.programId, spec),
      }]),
    );
    return new Map(
      hook.peers.map(({ link: l }) => [l.id, { ifindex, slotProgramId: placement.get(l.id)?.slotProgramId }]),
    );
  }

  /** The hook's chain in run order, bpfd's `members` (all its links on the hook) marked as managed. */
  hookChain(spec: NetworkAttach, members: HookMember[]): HookChainView {
    const base = {
      type: spec.type,
      iface: spec.iface,
      ...(spec.netns ? { netns: spec.netns } : {}),
      ...(spec.type !== "xdp" ? { direction: spec.direction } : {}),
    };
    const hookName = spec.type === "xdp"
      ? `xdp:${spec.netns ?? ""}:${spec.iface}`
      : `tc:${spec.netns ?? ""}:${spec.iface}:${spec.direction}`;
    let ifindex: number;
    try {
      ifindex = this.#ifindex(spec.iface, spec.netns);
    } catch {
      return { hook: hookName, ...base, chain: [] };
    }
    const netns = netnsPath(spec.netns);
    if (spec.type === "xdp") {
      const view = this.xdp.chain({ ifindex, netns }, members.map((m) => chainMember(m, NO_RELOAD)));
      return {
        hook: hookName,
        ...base,
        ...(view.dispatcherId ? { dispatcherId: view.dispatcherId } : {}),
        chain: view.entries,
      };
    }
    if (spec.type === "tcx") {
      const chain = this.tcx.chain(
        { iface: spec.iface, ifindex, netns, direction: spec.direction },
        members.map(({ link, program }) => tcxMember(this, link, program)),
      );
      return { hook: hookName, ...base, chain };
    }
    const filter = members.find((m) => m.link.tc)?.link.tc;
    if (filter && members.length > 1) {
      const view = this.tc.chain(
        this.#tcHook(spec, ifindex, filter),
        members.map((m) => chainMember(m, NO_RELOAD)),
      );
      return {
        hook: hookName,
        ...base,
        ...(view.dispatcherId ? { dispatcherId: view.dispatcherId } : {}),
        chain: view.entries,
      };
    }
    const chain = members
      .filter((m) => m.link.attach.type === "tc")
      .sort((a, b) => (a.link.tc?.priority ?? 0) - (b.link.tc?.priority ?? 0))
      .map(({ link, program }, position) => ({
        position,
        programId: link.programId,
        name: program.name,
        priority: (link.attach as { priority: number }).priority,
        proceedOn: [...(link.attach as { proceedOn: string[] }).proceedOn],
        managed: true,
        linkId: link.id,
      }));
    return { hook: hookName, ...base, chain };
  }

  /**
   * A tc filter's priority is its place: a new priority adds the filter at the new place first, then
   * removes the old one, so the program never stops running (it may run twice for packets in between).
   */
  #moveTcFilter(link: LinkRecord, spec: Extract<AttachSpec, { type: "tc" }>): Attachment {
    const { ifindex, tc } = link;
    if (!tc || !ifindex || tc.priority === spec.priority + 1) return { ifindex, tc };
    const point = spec.direction === "ingress" ? TcAttachPoint.INGRESS : TcAttachPoint.EGRESS;
    return inNetns(netnsPath(spec.netns), () => {
      const progFd = bpf.objGet(this.progPin(link.programId));
      try {
        const moved = bpf.tcAttach(ifindex, point, progFd, tc.handle, spec.priority + 1);
        bpf.tcDetach(ifindex, point, tc.handle, tc.priority);
        return { ifindex, tc: { ...tc, ...moved } };
      } catch (err) {
        if (err instanceof bpf.LibbpfError && err.code === "EEXIST") {
          throw conflict(
            `${spec.iface} ${spec.direction} already has a tc filter at priority ${spec.priority + 1}`,
            {
              errno: err.code,
            },
          );
        }
        throw kernelRefused(err, `move tc filter on ${spec.iface}`);
      } finally {
        closeFd(progFd);
      }
    });
  }

  /** A tc filter has no kernel link: its handle is the bpfd link id, so it can be found after a crash. */
  #attachTcFilter(progFd: number, linkId: number, spec: Extract<AttachSpec, { type: "tc" }>): Attachment {
    const ifindex = this.#ifindex(spec.iface, spec.netns);
    const point = spec.direction === "ingress" ? TcAttachPoint.INGRESS : TcAttachPoint.EGRESS;
    return inNetns(netnsPath(spec.netns), () => {
      let qdiscCreated = false;
      try {
        qdiscCreated = bpf.tcHookCreate(ifindex, point);
        const { handle, priority } = bpf.tcAttach(ifindex, point, progFd, linkId, spec.priority + 1);
        return { ifindex, tc: { handle, priority, qdiscCreated } };
      } catch (err) {
        if (qdiscCreated) bpf.tcHookDestroy(ifindex, TcAttachPoint.INGRESS | TcAttachPoint.EGRESS);
        if (err instanceof bpf.LibbpfError && err.code === "EEXIST") {
          throw conflict(
            `${spec.iface} ${spec.direction} already has a tc filter at priority ${spec.priority + 1}`,
            {
              errno: err.code,
            },
          );
        }
        throw kernelRefused(err, `attach tc ${spec.direction} filter to ${spec.iface}`);
      }
    });
  }

  async #attachTracepoint(progFd: number, tracepoint: string): Promise<number> {
    const tracefs = await ensureTracefs();
    let id: number;
    try {
      id = Number(await Deno.readTextFile(`${tracefs}/events/${tracepoint}/id`));
    } catch {
      throw notFound("tracepoint", tracepoint, { field: "attach.tracepoint" });
    }
    const attr = perfAttr(PERF_TYPE_TRACEPOINT, BigInt(id));
    return this.#perfLink(progFd, attr, -1, 0, `attach tracepoint ${tracepoint}`);
  }

  async #attachKprobe(
    progFd: number,
    spec: Extract<AttachSpec, { type: "kprobe" | "kretprobe" }>,
  ): Promise<number> {
    const pmu = await probePmu("kprobe", spec.type === "kretprobe");
    const name = cstring(spec.fnName);
    const attr = perfAttr(pmu.type, pmu.config, name, BigInt(spec.offset));
    return this.#perfLink(progFd, attr, -1, 0, `attach ${spec.type} to ${spec.fnName}`);
  }

  async #attachUprobe(
    progFd: number,
    spec: Extract<AttachSpec, { type: "uprobe" | "uretprobe" }>,
  ): Promise<number> {
    const pmu = await probePmu("uprobe", spec.type === "uretprobe");
    const path = await resolveTarget(spec.target);
    let offset = spec.offset;
    if (spec.fnName) {
      try {
        offset += await functionOffset(path, spec.fnName);
      } catch (err) {
        if (err instanceof ElfError) {
          throw err.kind === "no_symbol"
            ? notFound("function", spec.fnName, { field: "attach.fnName", target: path })
            : invalid("attach.target", err.message);
        }
        throw err;
      }
    }
    const attr = perfAttr(pmu.type, pmu.config, cstring(path), BigInt(offset));
    const [pid, cpu] = spec.pid ? [spec.pid, -1] : [-1, 0];
    return this.#perfLink(progFd, attr, pid, cpu, `attach ${spec.type} to ${path}:${spec.fnName ?? offset}`);
  }

  #perfLink(progFd: number, attr: PerfAttr, pid: number, cpu: number, what: string): number {
    let perfFd: number;
    try {
      perfFd = perfEventOpen(attr.bytes, pid, cpu);
    } catch (err) {
      if (err instanceof SysError && err.code === "ESRCH") {
        throw notFound("process", pid, { field: "attach.pid" });
      }
      if (err instanceof SysError && (err.code === "ENOENT" || err.code === "EINVAL")) {
        throw kernelRefused(err, what, "the probe point does not exist or cannot be probed");
      }
      throw kernelRefused(err, what);
    }
    try {
      return bpf.linkCreate(what, progFd, perfFd, BpfAttachType.PERF_EVENT);
    } catch (err) {
      throw kernelRefused(err, what);
    } finally {
      closeFd(perfFd); // the link holds the perf event
    }
  }

  #attachTracing(progFd: number, type: "fentry" | "fexit"): number {
    try {
      return bpf.tracingAttach(`attach ${type}`, progFd);
    } catch (err) {
      const hint = err instanceof bpf.LibbpfError && err.code === "EPERM"
        ? "this kernel does not allow trampoline programs"
        : undefined;
      throw kernelRefused(err, `attach ${type}`, hint);
    }
  }

  /**
   * Removes an attachment. A link already gone (detached behind bpfd's back) is not an error. For a tc
   * filter, `releaseQdisc` says bpfd has no other filter on that interface: the clsact qdisc bpfd
   * created then goes too, unless someone else's filters are on it.
   */
  async detach(link: LinkRecord, releaseQdisc = false): Promise<void> {
    if (link.attach.type === "tc" && link.tc && link.ifindex) {
      const { ifindex, tc, attach } = link;
      const point = attach.direction === "ingress" ? TcAttachPoint.INGRESS : TcAttachPoint.EGRESS;
      const netns = netnsPath(attach.netns);
      inNetns(netns, () => {
        try {
          bpf.tcDetach(ifindex, point, tc.handle, tc.priority);
        } catch (err) {
          if (!(err instanceof bpf.LibbpfError && (err.code === "ENOENT" || err.code === "ENODEV"))) {
            throw err;
          }
        }
      });
      if (releaseQdisc && tc.qdiscCreated && await tcFilterCount(attach.iface, netns) === 0) {
        inNetns(netns, () => {
          try {
            bpf.tcHookDestroy(ifindex, TcAttachPoint.INGRESS | TcAttachPoint.EGRESS);
          } catch (err) {
            if (!(err instanceof bpf.LibbpfError && (err.code === "ENOENT" || err.code === "EINVAL"))) {
              throw err;
            }
          }
        });
      }
      return;
    }
    if (link.attach.type === "xdp") {
      await this.detachFromHook(link, { peers: [], reload: NO_RELOAD });
      return;
    }
    await this.releaseLink(link.id);
  }

  /** Detaches the link pinned as `linkId` and removes the pin; a missing pin is not an error. */
  async releaseLink(linkId: number): Promise<void> {
    const pin = this.linkPin(linkId);
    try {
      bpf.withFd(bpf.objGet(pin), (fd) => {
        try {
          bpf.linkDetach(fd);
        } catch (err) {
          // Tracing and raw tracepoint links cannot be detached, only released: unpinning does that.
          if (!(err instanceof bpf.LibbpfError && (err.code === "EOPNOTSUPP" || err.code === "EINVAL"))) {
            throw err;
          }
        }
      });
    } catch (err) {
      if (!(err instanceof bpf.LibbpfError && err.code === "ENOENT")) throw err;
    }
    await removePin(pin);
  }

  /** Whether the attachment is still in the kernel. */
  attachmentAlive(link: LinkRecord): boolean {
    if (link.attach.type === "xdp") {
      if (!link.ifindex) return false;
      try {
        const state = this.xdp.read({ ifindex: link.ifindex, netns: netnsPath(link.attach.netns) });
        if (state.kind === "program") return state.programId === link.programId;
        if (state.kind === "dispatcher") return state.slots.some((s) => s.programId === link.slotProgramId);
        return false;
      } catch {
        return false;
      }
    }
    if (link.attach.type === "tc" && link.tc && link.ifindex) {
      const { ifindex, tc } = link;
      const point = link.attach.direction === "ingress" ? TcAttachPoint.INGRESS : TcAttachPoint.EGRESS;
      if (link.slotProgramId) {
        // In a dispatcher: the shared filter is there, and so is the program's slot extension.
        try {
          const running = inNetns(
            netnsPath(link.attach.netns),
            () => bpf.tcQuery(ifindex, point, tc.handle, tc.priority),
          );
          return running !== undefined && this.programInfo(link.slotProgramId) !== undefined;
        } catch {
          return false;
        }
      }
      try {
        return inNetns(
          netnsPath(link.attach.netns),
          () => bpf.tcQuery(ifindex, point, tc.handle, tc.priority),
        ) ===
          link.programId;
      } catch {
        return false;
      }
    }
    try {
      return bpf.withFd(bpf.objGet(this.linkPin(link.id)), (fd) => bpf.linkInfo(fd).id === link.kernelLinkId);
    } catch {
      return false;
    }
  }

  // ---- enumeration --------------------------------------------------------------------------------

  /** Every program in the kernel, with what the kernel says about it (the set `bpftool prog list` shows). */
  allPrograms(): bpf.ProgramInfo[] {
    const found: bpf.ProgramInfo[] = [];
    for (const id of bpf.programIds()) {
      const info = programInfoById(id);
      if (info) found.push(info);
    }
    return found;
  }

  /** What the kernel says about program `id`, or undefined if it is gone. */
  programInfo(id: number): bpf.ProgramInfo | undefined {
    return programInfoById(id);
  }

  /** Every BPF link in the kernel. */
  allLinks(): bpf.LinkInfoValue[] {
    const found: bpf.LinkInfoValue[] = [];
    for (const id of bpf.linkIds()) {
      try {
        found.push(bpf.withFd(bpf.linkFdById(id), bpf.linkInfo));
      } catch { /* released meanwhile */ }
    }
    return found;
  }

  /** Pins under bpfd's directories: program ids, link ids and map directories found on the bpffs. */
  async pins(): Promise<{ programs: number[]; links: number[]; mapDirs: string[] }> {
    const list = async (dir: string) => {
      const names: string[] = [];
      try {
        for await (const e of Deno.readDir(dir)) names.push(e.name);
      } catch { /* not there yet */ }
      return names;
    };
    const numeric = (names: string[]) => names.filter((n) => /^\d+$/.test(n)).map(Number);
    return {
      programs: numeric(await list(this.progDir)),
      links: numeric(await list(this.linkDir)),
      mapDirs: (await list(this.mapDir)).map((n) => `${this.mapDir}/${n}`),
    };
  }
}

/** Every program id of bpfd's on a hook: its programs and their slot extensions. */
function knownIds(members: HookMember[]): Set<number> {
  const ids = new Set<number>();
  for (const { link } of members) {
    ids.add(link.programId);
    if (link.slotProgramId) ids.add(link.slotProgramId);
  }
  return ids;
}

/** A link on an XDP or tc hook as the chain managers see it (both take the same shape). */
function chainMember({ link, program }: HookMember, reload: HookContext["reload"]): XdpMember & TcMember {
  const spec = link.attach as Extract<AttachSpec, { type: "xdp" | "tc" }>;
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

/** bpfd's other tc links on the hook that run in its shared filter. */
function tcPeers(hook: HookContext): HookMember[] {
  return hook.peers.filter((p) => p.link.attach.type === "tc" && p.link.tc && p.link.ifindex);
}

function tcxMember(kernel: NodeKernel, link: LinkRecord, program: ProgramRecord): TcxMember {
  return {
    linkId: link.id,
    programId: link.programId,
    name: program.name,
    priority: (link.attach as { priority: number }).priority,
    kernelLinkId: link.kernelLinkId,
    linkPin: kernel.linkPin(link.id),
  };
}

function programInfoById(id: number): bpf.ProgramInfo | undefined {
  try {
    return bpf.withFd(bpf.programFdById(id), bpf.programInfo);
  } catch {
    return undefined; // unloaded between the id walk and the open
  }
}

/** The path of a namespace given as a name from /run/netns or a path (validated by the schema). */
export function netnsPath(netns: string | undefined): string | undefined {
  if (!netns) return undefined;
  return netns.startsWith("/") ? netns : `/run/netns/${netns}`;
}

/** How many tc filters (anyone's) are on an interface's ingress and egress hooks. */
async function tcFilterCount(iface: string, netns: string | undefined): Promise<number> {
  let count = 0;
  for (const hook of ["ingress", "egress"]) {
    const tc = ["tc", "-j", "filter", "show", "dev", iface, hook];
    const [cmd, ...args] = netns ? ["nsenter", `--net=${netns}`, ...tc] : tc;
    const { code, stdout } = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    if (code !== 0) return Infinity; // cannot tell: keep the qdisc rather than clobber someone's filters
    const text = new TextDecoder().decode(stdout).trim();
    count += text ? (JSON.parse(text) as unknown[]).length : 0;
  }
  return count;
}

async function removePin(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

interface PerfAttr {
  bytes: Uint8Array<ArrayBuffer>;
  /** Strings the kernel reads through config1; kept referenced until perf_event_open returns. */
  keep?: Uint8Array;
}

function perfAttr(type: number, config: bigint, config1?: Uint8Array<ArrayBuffer>, config2 = 0n): PerfAttr {
  const bytes = new Uint8Array(PerfEventAttr.size);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(PerfEventAttr.type, type, true);
  dv.setUint32(PerfEventAttr.sizeField, PerfEventAttr.size, true);
  dv.setBigUint64(PerfEventAttr.config, config, true);
  if (config1) {
    dv.setBigUint64(
      PerfEventAttr.config1,
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(config1))),
      true,
    );
  }
  dv.setBigUint64(PerfEventAttr.config2, config2, true);
  return { bytes, keep: config1 };
}

/** The dynamic PMU for kprobes or uprobes, and the config bit for a return probe. */
async function probePmu(
  kind: "kprobe" | "uprobe",
  retprobe: boolean,
): Promise<{ type: number; config: bigint }> {
  const dir = `/sys/bus/event_source/devices/${kind}`;
  let type: number;
  try {
    type = Number(await Deno.readTextFile(`${dir}/type`));
  } catch {
    throw new BpfdError(
      422,
      "kernel_unsupported",
      `this kernel has no ${kind} support (${
        kind === "kprobe" ? "CONFIG_KPROBES" : "CONFIG_UPROBES"
      } is not set: ${dir} is absent)`,
      { errno: "ENOENT" },
    );
  }
  if (!retprobe) return { type, config: 0n };
  const format = await Deno.readTextFile(`${dir}/format/retprobe`); // "config:0"
  const bit = Number(format.trim().split(":")[1] ?? 0);
  return { type, config: 1n << BigInt(bit) };
}

async function resolveTarget(target: string): Promise<string> {
  const candidates = target.startsWith("/")
    ? [target]
    : target.includes("/")
    ? []
    : LIBRARY_DIRS.map((d) => `${d}/${target}`);
  for (const path of candidates) {
    try {
      const real = await Deno.realPath(path);
      if ((await Deno.stat(real)).isFile) return real;
    } catch { /* try the next */ }
  }
  throw notFound("target", target, { field: "attach.target" });
}
