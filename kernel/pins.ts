/**
 * bpfd's pins on its bpffs: programs under `progs/<id>`, maps under `maps/<program id>/<name>`, links
 * under `links/<link id>`. Map pins are readable by the bpfd group, so applications can open them.
 * A bpffs lives in kernel memory: its files are made and removed synchronously, without the worker-thread
 * trip of an async file op.
 *
 * @example
 * ```ts
 * const pins = new Pins("/run/bpfd/fs", groupId);
 * await pins.prepare();
 * const fd = objGet(pins.program(42));
 * ```
 * @module
 */
import { hasErrno } from "../ffi/errno.ts";
import * as bpf from "../ffi/libbpf.ts";
import type { Attachment } from "./attach/kind.ts";

/** The pin directories under one bpffs, and what bpfd does with the pins in them. */
export class Pins {
  readonly progDir: string;
  readonly mapDir: string;
  readonly linkDir: string;

  constructor(readonly bpffs: string, readonly groupId?: number) {
    this.progDir = `${bpffs}/progs`;
    this.mapDir = `${bpffs}/maps`;
    this.linkDir = `${bpffs}/links`;
  }

  /** Creates the pin directories (map pins readable by the bpfd group). */
  async prepare(): Promise<void> {
    for (const dir of [this.progDir, this.mapDir, this.linkDir]) await Deno.mkdir(dir, { recursive: true });
    this.share(this.bpffs, 0o750);
    this.share(this.mapDir, 0o750);
  }

  /** Gives the bpfd group access to `path` (when the node has such a group). */
  share(path: string, mode: number): void {
    if (this.groupId === undefined) return;
    Deno.chownSync(path, 0, this.groupId);
    Deno.chmodSync(path, mode);
  }

  /** Where program `id` is pinned. */
  program(id: number): string {
    return `${this.progDir}/${id}`;
  }

  /** Where bpfd link `linkId` is pinned. */
  link(linkId: number): string {
    return `${this.linkDir}/${linkId}`;
  }

  /** Pins a fresh link fd; if pinning fails the fd is closed, which destroys the link. */
  pinLink(linkId: number, linkFd: number, extra: Attachment = {}): Attachment {
    try {
      const info = bpf.linkInfo(linkFd);
      bpf.objPin(linkFd, this.link(linkId));
      return { ...extra, kernelLinkId: info.id };
    } finally {
      bpf.closeFd(linkFd);
    }
  }

  /** Whether the link pinned as `linkId` is still the kernel's link `kernelLinkId`. */
  linkAlive(linkId: number, kernelLinkId: number | undefined): boolean {
    try {
      return bpf.withFd(bpf.objGet(this.link(linkId)), (fd) => bpf.linkInfo(fd).id === kernelLinkId);
    } catch {
      return false;
    }
  }

  /** Detaches the link pinned as `linkId` and removes the pin; a missing pin is not an error. */
  releaseLink(linkId: number): void {
    const pin = this.link(linkId);
    try {
      bpf.withFd(bpf.objGet(pin), (fd) => {
        try {
          bpf.linkDetach(fd);
        } catch (err) {
          // Tracing and raw tracepoint links cannot be detached, only released: unpinning does that.
          if (!hasErrno(err, "EOPNOTSUPP", "EINVAL")) throw err;
        }
      });
    } catch (err) {
      if (!hasErrno(err, "ENOENT")) throw err;
    }
    removePin(pin);
  }

  /** Removes map pins, and their directories once empty. */
  removeMapPins(paths: string[]): void {
    const dirs = new Set<string>();
    for (const path of paths) {
      removePin(path);
      dirs.add(path.slice(0, path.lastIndexOf("/")));
    }
    for (const dir of dirs) {
      if (!dir.startsWith(`${this.mapDir}/`)) continue;
      try {
        Deno.removeSync(dir); // only when empty
      } catch { /* still holds another program's pins */ }
    }
  }

  /** Pins under bpfd's directories: program ids, link ids and map directories found on the bpffs. */
  async list(): Promise<{ programs: number[]; links: number[]; mapDirs: string[] }> {
    const names = async (dir: string) => {
      const found: string[] = [];
      try {
        for await (const e of Deno.readDir(dir)) found.push(e.name);
      } catch { /* not there yet */ }
      return found;
    };
    const numeric = (found: string[]) => found.filter((n) => /^\d+$/.test(n)).map(Number);
    return {
      programs: numeric(await names(this.progDir)),
      links: numeric(await names(this.linkDir)),
      mapDirs: (await names(this.mapDir)).map((n) => `${this.mapDir}/${n}`),
    };
  }
}

/** Removes a pin; one already gone is not an error. */
export function removePin(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}
