/**
 * What the chain modules share: one of bpfd's programs on a hook as a chain manager sees it, and one
 * program of a chain as `list` shows it.
 *
 * @example
 * ```ts
 * const entries: ChainEntry[] = xdpChains.chain(hook, members).entries;
 * ```
 * @module
 */
import type { ReloadPlan } from "./dispatcher.ts";

/** One of bpfd's programs on an XDP or tc hook. */
export interface ChainMember {
  linkId: number;
  /** bpfd's program: run directly when it is the only one on the hook. */
  programId: number;
  name: string;
  priority: number;
  proceedOn: readonly string[];
  /** Its extension program, while it runs in a dispatcher slot. */
  slotProgramId?: number;
  /** How to load it again as an extension (the first time it goes into a dispatcher). */
  reload(): Promise<ReloadPlan>;
}

/** One program of a chain, in run order, as `list` shows it. */
export interface ChainEntry {
  position: number;
  /** The program that runs: bpfd's program id for its own, the kernel's id for someone else's. */
  programId: number;
  name: string;
  priority: number;
  proceedOn: string[];
  managed: boolean;
  linkId?: number;
  /** The extension program that runs it in a dispatcher slot. */
  slotProgramId?: number;
}
