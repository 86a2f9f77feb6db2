/**
 * bpftrace program text seen from a container: uprobe, uretprobe and usdt probes name binaries by their
 * path inside the container (`uprobe:/app/server:handle`); the node reaches them through the root of one
 * of the container's processes (`uprobe:/proc/<pid>/root/app/server:handle`).
 *
 * @example
 * ```ts
 * inContainerRoot("uprobe:/app/server:handle { @ = count(); }", "/proc/42/root");
 * // "uprobe:/proc/42/root/app/server:handle { @ = count(); }"
 * ```
 * @module
 */

/** A probe that names a file (long and short forms), at the start of a probe list entry. */
const FILE_PROBE = /(^|[\s,])(uprobe|uretprobe|usdt|u|ur|U):(\/)/gm;

/** `script` with the file of every uprobe, uretprobe and usdt probe moved under `root`. */
export function inContainerRoot(script: string, root: string): string {
  return script.replace(FILE_PROBE, (_m, before, kind) => `${before}${kind}:${root}/`);
}
