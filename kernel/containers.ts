/**
 * Finds a container's processes on this node by its container id (the runtime's id, as a pod's status
 * gives it: `containerd://<id>`), through the cgroup paths in /proc/<pid>/cgroup, which carry the id.
 *
 * @example
 * ```ts
 * const pid = await containerPid("containerd://4f1c...");
 * ```
 * @module
 */

/** The container id without its runtime prefix; undefined when it is not a plain hex id. */
export function bareContainerId(id: string): string | undefined {
  const bare = id.replace(/^[a-z0-9.-]+:\/\//, "");
  return /^[0-9a-f]{12,64}$/.test(bare) ? bare : undefined;
}

/** The lowest pid (the container's first process) whose cgroup path names container `id`. */
export async function containerPid(id: string): Promise<number | undefined> {
  const bare = bareContainerId(id);
  if (!bare) return undefined;
  let found: number | undefined;
  for await (const entry of Deno.readDir("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid) || (found !== undefined && pid > found)) continue;
    try {
      if ((await Deno.readTextFile(`/proc/${pid}/cgroup`)).includes(bare)) found = pid;
    } catch { /* exited meanwhile */ }
  }
  return found;
}
