/**
 * The context every function gets: the only way a function reaches the world. The runtime builds one per
 * node (runtime/ctx.ts) and one per call with the caller's identity; tests build one on a scratch bpffs.
 *
 * @module
 */
import type { KeyedLocks } from "../runtime/locks.ts";
import type { Logger } from "../lib/log.ts";
import type { NodeKernel } from "../kernel/kernel.ts";
import type { StateStore } from "../runtime/state.ts";
import type { ImageSource, PulledImage } from "../model/image.ts";
import type { Identity } from "../model/schemas.ts";

/** Pulls bytecode images (image/). */
export interface ImagePuller {
  pull(source: ImageSource, opts?: { onProgress?: (event: unknown) => void }): Promise<PulledImage>;
}

/** What a function may use. */
export interface Ctx {
  /** The kernel: load, attach, detach, unload, enumerate (pins under bpfd's bpffs). */
  kernel: NodeKernel;
  /** bpfd's records of programs and links, persisted atomically. */
  state: StateStore;
  /** Locks per hook: calls on the same hook are serialized. */
  locks: KeyedLocks;
  /** Bytecode images, when the runtime has an image store. */
  images?: ImagePuller;
  /** Who is calling. */
  caller: Identity;
  /** The BpfProgram `reconcile` is converging when it is the one calling (in-process, never a request). */
  reconciling?: string;
  log: Logger;
}
