/**
 * Network namespaces and interfaces as attach specs name them: a namespace by name (`/run/netns/<name>`)
 * or path, an interface by name inside it.
 *
 * @example
 * ```ts
 * const ifindex = ifindexOf("veth0", "blue"); // the index of veth0 in /run/netns/blue
 * ```
 * @module
 */
import { hasErrno } from "../ffi/errno.ts";
import { ifNameToIndex, inNetns } from "../ffi/libc.ts";
import { notFound } from "./errors.ts";

/** The path of a namespace given as a name from /run/netns or a path (validated by the schema). */
export function netnsPath(netns: string | undefined): string | undefined {
  if (!netns) return undefined;
  return netns.startsWith("/") ? netns : `/run/netns/${netns}`;
}

/** The index of interface `iface` in namespace `netns`; a missing namespace or interface is not_found. */
export function ifindexOf(iface: string, netns?: string): number {
  let ifindex: number;
  try {
    ifindex = inNetns(netnsPath(netns), () => ifNameToIndex(iface));
  } catch (err) {
    if (hasErrno(err, "ENOENT")) throw notFound("netns", netns!);
    throw err;
  }
  if (!ifindex) throw notFound("interface", iface, netns ? { netns } : {});
  return ifindex;
}
