/**
 * Start-up recovery: reconciles bpfd's records with the kernel and the pins, so a runtime killed at any
 * point (also kill -9) comes back with everything it attached still running. Half-done work is undone:
 * an attach interrupted before it was recorded, pins of a load that was never recorded. Records of
 * objects that vanished behind bpfd's back are dropped and reported.
 *
 * @module
 */
import { type Ctx, pruneVanished } from "../functions/mod.ts";

/** One thing recovery found and what it did about it. */
export interface Finding {
  what: string;
  id: number;
  action: string;
}

/** Brings state and kernel into agreement; returns what it found. Safe to run twice. */
export async function recover(ctx: Pick<Ctx, "kernel" | "state" | "log">): Promise<Finding[]> {
  const { kernel, state } = ctx;
  const findings: Finding[] = [];

  const vanished = await pruneVanished(ctx);
  for (const id of vanished.programs) {
    findings.push({ what: "program", id, action: "gone from the kernel; record dropped" });
  }
  for (const link of vanished.links) {
    findings.push({ what: "link", id: link.id, action: "detached behind bpfd's back; record dropped" });
  }
  for (const link of state.links().filter((l) => l.pending)) {
    await kernel.detach(link).catch(() => {});
    await state.update({ deleteLinks: [link.id] });
    findings.push({ what: "link", id: link.id, action: "attach was interrupted; rolled back" });
  }

  const pins = await kernel.pinned();
  for (const id of pins.links) {
    if (state.link(id)) continue;
    kernel.releaseLink(id);
    findings.push({ what: "link pin", id, action: "not recorded; detached" });
  }
  const usedMapPins = new Set(state.programs().flatMap((p) => Object.values(p.maps)));
  for (const id of pins.programs) {
    if (state.program(id)) continue;
    kernel.unload(id, []);
    findings.push({ what: "program pin", id, action: "load was never recorded; unloaded" });
  }
  for (const dir of pins.mapDirs) {
    const stale: string[] = [];
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      if (!usedMapPins.has(path)) stale.push(path);
    }
    if (stale.length === 0) continue;
    kernel.removeMapPins(stale);
    findings.push({
      what: "map pins",
      id: Number(dir.split("/").at(-1)) || 0,
      action: `${stale.length} unused; removed`,
    });
  }

  for (const f of findings) ctx.log.warn("recovery", { ...f });
  return findings;
}
