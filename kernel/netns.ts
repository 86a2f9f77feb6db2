/**
 * Network namespaces and interfaces as attach specs name them: a namespace by name (`/run/netns/<name>`)
 * or path, an interface by name inside it. A link records which namespace its path named at attach
 * (`netnsId`); later, a path that names another one (a reused pid) counts as a namespace that is gone.
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
import type { LinkRecord, NetnsId } from "../model/schemas.ts";

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

/** The identity (nsfs device and inode) of the namespace `netns` names now; undefined for the runtime's own. */
export function netnsIdOf(netns: string | undefined): NetnsId | undefined {
  const path = netnsPath(netns);
  if (!path) return undefined;
  try {
    const { dev, ino } = Deno.statSync(path); // follows /proc/<pid>/ns/net to the namespace's nsfs inode
    return { dev, ino: ino! };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw notFound("netns", netns!);
    throw err;
  }
}

/** Whether `id` is the namespace `link` recorded at attach (a link recorded without one: yes). */
export function sameNetnsAs(link: Pick<LinkRecord, "netnsId">, id: NetnsId | undefined): boolean {
  return !link.netnsId || (id?.dev === link.netnsId.dev && id.ino === link.netnsId.ino);
}

/** Whether `link`'s namespace path still names the namespace it was attached in (false once it is gone). */
export function netnsStillSame(link: Pick<LinkRecord, "attach" | "netnsId">): boolean {
  if (!link.netnsId) return true;
  const netns = "netns" in link.attach ? link.attach.netns : undefined;
  try {
    return sameNetnsAs(link, netnsIdOf(netns));
  } catch {
    return false; // the namespace is gone
  }
}
