/**
 * The map volumes this node has published: publish (bounded per node and per pod, idempotent for the same
 * request), unpublish, and recovery at start — staging leftovers, volumes of pods that are gone, and map
 * volume mounts no record knows (a runtime stopped between mount and record) are removed. Records are
 * kept in one JSON file (written whole, then renamed) so a restarted runtime knows whose volume is whose.
 *
 * @example
 * ```ts
 * const volumes = await MapVolumes.open({ stateDir: "/run/bpfd", kubeletDir, limits, log });
 * await volumes.publish(req, () => grantFor(req, deps));
 * ```
 * @module
 */
import { bpffsMountsUnder, publishMapVolume, unpublishMapVolume } from "../kernel/map_volumes.ts";
import type { Logger } from "../lib/log.ts";
import type { Grant } from "./access.ts";
import { CsiError } from "./errors.ts";
import { type PodRef, type PublishRequest, targetPathOf } from "./request.ts";

/** One published volume, as recorded: the request, the group its pins belong to, and when. */
export interface VolumeRecord extends PublishRequest {
  gid: number;
  publishedAt: string;
}

/** Where the records and staging directories are, and the bounds. */
export interface VolumesOptions {
  stateDir: string;
  kubeletDir: string;
  maxVolumes: number;
  maxVolumesPerPod: number;
  log: Logger;
}

const same = (r: VolumeRecord, req: PublishRequest) =>
  r.targetPath === req.targetPath && r.config === req.config && r.writable === req.writable &&
  r.maps.join(",") === req.maps.join(",") && r.pod.uid === req.pod.uid;

/** The node's map volumes and their records. */
export class MapVolumes {
  #records = new Map<string, VolumeRecord>();
  #turn: Promise<unknown> = Promise.resolve();
  readonly file: string;
  readonly stagingDir: string;

  private constructor(readonly opts: VolumesOptions) {
    this.file = `${opts.stateDir}/csi-volumes.json`;
    this.stagingDir = `${opts.stateDir}/csi-staging`;
  }

  /** Reads the records (none if there is no file yet). */
  static async open(opts: VolumesOptions): Promise<MapVolumes> {
    const volumes = new MapVolumes(opts);
    try {
      for (const r of JSON.parse(await Deno.readTextFile(volumes.file)) as VolumeRecord[]) {
        volumes.#records.set(r.volumeId, r);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    return volumes;
  }

  /** The records, oldest first. */
  records(): VolumeRecord[] {
    return [...this.#records.values()];
  }

  /** Runs `fn` after every earlier call of this: one kernel change and record write at a time. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#turn.catch(() => {}).then(fn);
    this.#turn = next;
    return next;
  }

  async #save(): Promise<void> {
    const tmp = `${this.file}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify(this.records(), null, 1), { mode: 0o600 });
    await Deno.rename(tmp, this.file);
  }

  /** Publishes `req`'s volume once `grant` allows it; the same request again is a no-op. */
  publish(req: PublishRequest, grant: () => Promise<Grant>): Promise<void> {
    return this.#serial(async () => {
      const known = this.#records.get(req.volumeId);
      if (known) {
        if (!same(known, req)) {
          throw new CsiError("already_exists", `volume ${req.volumeId} is published with other arguments`);
        }
        if ((await bpffsMountsUnder(known.targetPath, true)).includes(known.targetPath)) return;
        this.#records.delete(req.volumeId); // its mount is gone: publish it again
      }
      if (this.#records.size >= this.opts.maxVolumes) {
        throw new CsiError(
          "resource_exhausted",
          `node has ${this.#records.size} map volumes: at most ${this.opts.maxVolumes}`,
        );
      }
      const ofPod = this.records().filter((r) => r.pod.uid === req.pod.uid).length;
      if (ofPod >= this.opts.maxVolumesPerPod) {
        throw new CsiError(
          "resource_exhausted",
          `pod ${req.pod.namespace}/${req.pod.name} has ${ofPod} map volumes: at most ${this.opts.maxVolumesPerPod}`,
        );
      }
      const g = await grant();
      await publishMapVolume({
        staging: `${this.stagingDir}/${req.volumeId}`,
        target: req.targetPath,
        maps: g.maps,
        gid: g.gid,
        writable: g.writable,
      });
      const { volumeId, targetPath, pod, config, maps, writable } = req;
      this.#records.set(volumeId, {
        volumeId,
        targetPath,
        pod,
        config,
        maps,
        writable,
        gid: g.gid,
        publishedAt: new Date().toISOString(),
      });
      try {
        await this.#save();
      } catch (err) {
        this.#records.delete(volumeId);
        await unpublishMapVolume(targetPath);
        throw err;
      }
    });
  }

  /** Unmounts and forgets the volume at `targetPath` (recorded or not); a volume already gone is fine. */
  unpublish(volumeId: string, targetPath: string): Promise<VolumeRecord | undefined> {
    return this.#serial(async () => {
      const known = this.#records.get(volumeId);
      if (known && known.targetPath !== targetPath) {
        throw new CsiError("not_found", `volume ${volumeId} is not published at ${targetPath}`);
      }
      await unpublishMapVolume(targetPath);
      if (known) {
        this.#records.delete(volumeId);
        await this.#save();
      }
      return known;
    });
  }

  /**
   * Removes what a stopped runtime may have left: staging mounts, volumes whose pod is gone (`podGone`
   * answers; on an error the volume stays and the kubelet's unpublish removes it), records without a mount
   * and map volume mounts without a record. Returns the targets it unmounted.
   */
  recover(podGone: (pod: PodRef) => Promise<boolean>): Promise<string[]> {
    return this.#serial(async () => {
      const removed: string[] = [];
      for (const m of (await bpffsMountsUnder(this.stagingDir)).reverse()) await unpublishMapVolume(m);
      await Deno.remove(this.stagingDir, { recursive: true }).catch(() => {/* none */});
      const mounted = new Set(
        await bpffsMountsUnder(`${this.opts.kubeletDir.replace(/\/+$/, "")}/pods`, true),
      );
      // Asked all at once: an API server that does not answer delays the start by one timeout, not one each.
      const gone = await Promise.all(
        this.records().map((r) =>
          podGone(r.pod).catch((err) => {
            this.opts.log.warn("map volume: pod lookup failed, volume kept", {
              volumeId: r.volumeId,
              error: String(err),
            });
            return false;
          })
        ),
      );
      for (const [i, r] of this.records().entries()) {
        if (mounted.has(r.targetPath) && !gone[i]) continue;
        await unpublishMapVolume(r.targetPath);
        this.#records.delete(r.volumeId);
        if (mounted.delete(r.targetPath)) removed.push(r.targetPath);
      }
      const known = new Set(this.records().map((r) => r.targetPath));
      for (const path of mounted) {
        if (known.has(path)) continue;
        try {
          targetPathOf({ targetPath: path }, this.opts.kubeletDir);
        } catch {
          continue; // not at a CSI volume directory: not bpfd's
        }
        await unpublishMapVolume(path);
        removed.push(path);
      }
      await this.#save();
      return removed;
    });
  }
}
