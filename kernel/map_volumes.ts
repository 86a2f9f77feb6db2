/**
 * A map volume: a bpffs of its own holding pins of some of bpfd's maps, owned by one group, read-only unless
 * asked otherwise, bind-mounted at a target path (a pod's CSI volume). Built in a staging directory and
 * bind-mounted (its `maps/` directory only) once complete; the staging mount is then dropped, so the target
 * is the volume's only mount and unmounting it frees the bpffs and its pins.
 *
 * @example
 * ```ts
 * await publishMapVolume({ staging: "/run/bpfd/csi/v1", target, maps: { xdp_packets: pin }, gid: 3000 });
 * await unpublishMapVolume(target);
 * ```
 * @module
 */
import * as bpf from "../ffi/libbpf.ts";
import { run } from "../lib/command.ts";
import { KernelError, refused } from "./errors.ts";
import { mounts } from "./mounts.ts";

/** What a map volume holds and where it goes. */
export interface MapVolume {
  /** An empty directory (made if missing) where the volume is built; removed again. */
  staging: string;
  /** Where the volume is bind-mounted (made if missing). */
  target: string;
  /** The maps: name in the volume → the node's pin of the map. */
  maps: Record<string, string>;
  /** The group owning the pins and the root directory. */
  gid: number;
  /** Pins 0660 and a writable bpffs; otherwise pins 0440 on a read-only bpffs (no write open at all). */
  writable?: boolean;
}

async function mountCmd(args: string[], what: string): Promise<void> {
  const r = await run("mount", args);
  if (r.code !== 0) throw new KernelError("kernel_refused", "mount", `${what}: ${r.stderr.trim()}`);
}

async function unmount(path: string): Promise<void> {
  const r = await run("umount", [path]);
  if (r.code === 0) return;
  // Busy (a process still has it as its cwd): detach it now, the kernel frees it when the last user goes.
  const lazy = await run("umount", ["-l", path]);
  if (lazy.code !== 0) {
    throw new KernelError("kernel_refused", "mount", `umount ${path}: ${lazy.stderr.trim()}`);
  }
}

/** Builds the volume and mounts it at `target`; on any failure nothing of it stays (mounts, pins, dirs). */
export async function publishMapVolume(volume: MapVolume): Promise<void> {
  const { staging, target, gid } = volume;
  const undo: (() => Promise<void>)[] = [];
  try {
    await Deno.mkdir(staging, { recursive: true, mode: 0o700 });
    undo.push(() => Deno.remove(staging).catch(() => {/* not empty: a mount is still there */}));
    await mountCmd(["-t", "bpf", "-o", "mode=0700", "bpffs", staging], `mount a bpffs at ${staging}`);
    undo.push(() => unmount(staging));
    // A new bpffs comes with the kernel's preloaded iterators (maps.debug, progs.debug: every map and
    // program of the node), which cannot be removed: the volume is a directory of it, bind-mounted alone.
    const dir = `${staging}/maps`;
    await Deno.mkdir(dir);
    for (const [name, pin] of Object.entries(volume.maps)) {
      const path = `${dir}/${name}`;
      let fd: number;
      try {
        fd = bpf.objGet(pin);
      } catch (err) {
        throw refused(err, `open the map pin ${pin}`);
      }
      try {
        bpf.objPin(fd, path);
      } catch (err) {
        throw refused(err, `pin map ${name} in the volume`);
      } finally {
        bpf.closeFd(fd);
      }
      await Deno.chown(path, 0, gid);
      await Deno.chmod(path, volume.writable ? 0o660 : 0o440);
    }
    await Deno.chown(dir, 0, gid);
    await Deno.chmod(dir, volume.writable ? 0o750 : 0o550);
    if (!volume.writable) {
      // A read-only superblock: no one opens a pin for writing, whatever its mode bits become.
      await mountCmd(["-o", "remount,ro", staging], `make the bpffs at ${staging} read-only`);
    }
    await Deno.mkdir(target, { recursive: true, mode: 0o750 });
    await mountCmd(["--bind", dir, target], `bind-mount the volume at ${target}`);
    undo.push(() => unmount(target));
    await unmount(staging);
    await Deno.remove(staging);
  } catch (err) {
    for (const step of undo.reverse()) await step().catch(() => {/* best effort: the sweep retries */});
    throw err;
  }
}

/** Unmounts the volume at `target` (every mount stacked there) and removes the directory; idempotent. */
export async function unpublishMapVolume(target: string): Promise<void> {
  while ((await mounts()).has(target)) await unmount(target);
  try {
    await Deno.remove(target);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** The bpffs mounts at or under `dir` in this mount namespace; with `volumesOnly`, map volumes alone. */
export async function bpffsMountsUnder(dir: string, volumesOnly = false): Promise<string[]> {
  const prefix = dir.replace(/\/+$/, "") + "/";
  const found: string[] = [];
  for (const line of (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")) {
    const fields = line.split(" ");
    const sep = fields.indexOf("-");
    if (sep < 0 || fields[sep + 1] !== "bpf") continue;
    // A map volume is the `maps` directory of its bpffs (the mount's root, field 4).
    if (volumesOnly && fields[3] !== "/maps") continue;
    const path = fields[4].replace(/\\040/g, " ");
    if ((path === dir || path.startsWith(prefix)) && !found.includes(path)) found.push(path);
  }
  return found;
}
