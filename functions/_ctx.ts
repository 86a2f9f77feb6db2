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
  /** Who is calling. */
  caller: Identity;
  /** The BpfPolicy to enforce; absent: none configured, every call allowed. */
  policy?: PolicyGate;
  /** The BpfProgram `reconcile` is converging when it is the one calling (in-process, never a request). */
  reconciling?: string;
  log: Logger;
}
