/**
 * The context every function gets: the only way a function reaches the world. The runtime builds one per
 * node (runtime/ctx.ts) and one per call with the caller's identity; tests build one on a scratch bpffs.
 *
 * @module
 */
import type { Logger } from "../lib/log.ts";
import type { NodeKernel } from "../kernel/kernel.ts";
import type { ImageSource, PulledImage, PullOptions } from "../model/image.ts";
import type { Identity, LinkRecord, ProgramRecord } from "../model/schemas.ts";
import type { TraceEvent, TraceSessionInfo } from "../model/trace.ts";
import type { Requester } from "../model/policy.ts";
import type { EffectivePolicy } from "../policy/evaluate.ts";

/** bpfd's records of programs and links (runtime/state.ts keeps them in a file written atomically). */
export interface Records {
  /** Every program record, by id. */
  programs(): ProgramRecord[];
  /** One program record. */
  program(id: number): ProgramRecord | undefined;
  /** Every link record, or those of one program. */
  links(programId?: number): LinkRecord[];
  /** One link record. */
  link(id: number): LinkRecord | undefined;
  /** Reserves a link id; it is persisted with the next update. */
  allocateLinkId(): number;
  /** Applies changes and persists them before resolving. */
  update(change: {
    putPrograms?: ProgramRecord[];
    deletePrograms?: number[];
    putLinks?: LinkRecord[];
    deleteLinks?: number[];
  }): Promise<void>;
}

/** Named async locks (runtime/locks.ts): calls holding the same key run one after another. */
export interface Locks {
  /** Runs `fn` holding every lock in `keys`. */
  with<T>(keys: string[], fn: () => Promise<T>): Promise<T>;
}

/** Pulls bytecode images (image/). */
export interface ImagePuller {
  pull(source: ImageSource, opts?: PullOptions): Promise<PulledImage>;
  /** The digest `source` names now (a manifest HEAD for a tag), without downloading it. */
  resolve?(source: ImageSource, opts?: PullOptions): Promise<string>;
}

/** A trace session to start (runtime/trace_sessions.ts runs it). */
export interface TraceRequest {
  /** The program text bpftrace runs (uprobe paths already rewritten). */
  script: string;
  /** The program text as the caller gave it (recorded and logged). */
  given: string;
  seconds: number;
  caller: Identity;
}

/** The bounds of trace sessions on this node (runtime/config.ts `trace`). */
export interface TraceBounds {
  defaultSeconds: number;
  maxSeconds: number;
  maxScriptBytes: number;
}

/** This node's trace sessions (bpftrace children). */
export interface Traces {
  bounds: TraceBounds;
  /**
   * Starts a session once bpftrace has accepted the script; its events end with `end`, and cancelling
   * the stream ends the session. Throws TraceError (kernel/bpftrace.ts) when refused or over the limit.
   */
  start(request: TraceRequest): Promise<{ session: TraceSessionInfo; events: ReadableStream<TraceEvent> }>;
  /**
   * Ends session `id` as its time limit would (SIGINT: bpftrace prints its maps to the session's stream),
   * if `caller` started it.
   */
  stop(id: string, caller: Identity): "stopping" | "not_found" | "not_yours";
  /** The running sessions, each with the ids of the BPF programs it holds now. */
  sessions(): Array<TraceSessionInfo & { programIds: number[] }>;
  /** The root directory of a container's processes (`/proc/<pid>/root`), found by its container id. */
  containerRoot(containerId: string): Promise<string | undefined>;
}

/** The BpfPolicy a node enforces (runtime/policy.ts keeps it current); functions/_policy.ts applies it. */
export interface PolicyGate {
  /** The effective policy now. */
  current(): EffectivePolicy;
  /** Whether `user` may call on behalf of another (the controller's identity, for `reconcile`). */
  trusts(user: string): boolean;
  /** Set by `reconcile`: the config's requester, checked instead of the caller. */
  subject?: Requester;
}

/** What a function may use. */
export interface Ctx {
  /** The kernel: load, attach, detach, unload, enumerate (pins under bpfd's bpffs). */
  kernel: NodeKernel;
  /** bpfd's records of programs and links, persisted atomically. */
  state: Records;
  /** Locks per hook: calls on the same hook are serialized. */
  locks: Locks;
  /** Bytecode images, when the runtime has an image store. */
  images?: ImagePuller;
  /** Trace sessions, when the runtime runs them. */
  traces?: Traces;
  /** Who is calling. */
  caller: Identity;
  /** The BpfPolicy to enforce; absent: none configured, every call allowed. */
  policy?: PolicyGate;
  /** The BpfProgram `reconcile` is converging when it is the one calling (in-process, never a request). */
  reconciling?: string;
  log: Logger;
}
