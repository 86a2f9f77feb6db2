/**
 * The run order of programs that share a hook, and proceed-on as the dispatchers encode it. Lower
 * priority runs first; ties go by program name (as libxdp sorts, so bpfd and xdp-loader agree), then by
 * bpfd's link id, then by program id: the same set of programs always gets the same order.
 *
 * @module
 */
import { TC_DISPATCHER_RETVAL, TcActionValue, XDP_DISPATCHER_RETVAL, XdpActionValue } from "../../ffi/abi.ts";

/** What decides a program's place in a chain. */
export interface ChainKey {
  priority: number;
  /** The program's name as the kernel keeps it (15 characters at most). */
  name: string;
  linkId?: number;
  programId: number;
}

/** Sort comparator: priority, name, link id (bpfd's links before foreign programs), program id. */
export function compareChainKeys(a: ChainKey, b: ChainKey): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  const la = a.linkId ?? Infinity, lb = b.linkId ?? Infinity;
  if (la !== lb) return la < lb ? -1 : 1;
  return a.programId - b.programId;
}

/** The kernel's 15-character program name. */
export const kernelName = (name: string): string => name.slice(0, 15);

/** Which verdict family a dispatcher speaks. */
export type DispatcherKind = "xdp" | "tc";

const RETVAL = { xdp: XDP_DISPATCHER_RETVAL, tc: TC_DISPATCHER_RETVAL } as const;

function actionValue(kind: DispatcherKind, action: string): number {
  if (action === "dispatcher_return") return RETVAL[kind];
  const table: Record<string, number> = kind === "xdp" ? XdpActionValue : TcActionValue;
  const value = table[action];
  if (value === undefined) throw new Error(`unknown ${kind} action ${action}`);
  return value;
}

/** The bit of a verdict in chain_call_actions: `1 << ret` for XDP, `1 << (ret + 1)` for tc. */
const bitOf = (kind: DispatcherKind, value: number) => kind === "xdp" ? value : value + 1;

/** chain_call_actions for a proceed-on list: the verdicts after which the next program runs. */
export function proceedOnMask(kind: DispatcherKind, actions: readonly string[]): number {
  let mask = 0;
  for (const action of actions) mask |= 1 << bitOf(kind, actionValue(kind, action));
  return mask >>> 0;
}

/** The proceed-on names of a chain_call_actions mask (as another manager, e.g. libxdp, set it). */
export function proceedOnNames(kind: DispatcherKind, mask: number): string[] {
  const table: Record<string, number> = kind === "xdp" ? XdpActionValue : TcActionValue;
  const names = Object.keys(table).filter((name) => mask & (1 << bitOf(kind, table[name])));
  if (mask & (1 << bitOf(kind, RETVAL[kind]))) names.push("dispatcher_return");
  return names;
}
