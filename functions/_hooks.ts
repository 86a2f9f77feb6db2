/**
 * What a change on a shared network hook needs from bpfd's records: the other links on the hook and
 * how to load a program again (as a dispatcher slot extension). Used by attach, detach and modify.
 *
 * @module
 */
import type { HookContext, HookMember } from "../kernel/kernel.ts";
import type { ReloadPlan } from "../kernel/chains/dispatcher.ts";
import type { Ctx } from "./_ctx.ts";
import type { AttachSpec, LinkRecord, ProgramRecord } from "../model/schemas.ts";
import { hookKey } from "./_views.ts";
import { pullImage } from "./_images.ts";

/** Whether an attachment is on a network hook that several programs can share. */
export function isSharedHook(spec: AttachSpec): spec is Extract<AttachSpec, { type: "xdp" | "tc" | "tcx" }> {
  return spec.type === "xdp" || spec.type === "tc" || spec.type === "tcx";
}

/** bpfd's links on the same hook as `spec` (same attach type), except `exclude`, with their programs. */
export function hookMembers(ctx: Ctx, spec: AttachSpec, programId: number, exclude?: number): HookMember[] {
  const key = hookKey(programId, spec);
  const members: HookMember[] = [];
  for (const link of ctx.state.links()) {
    if (link.id === exclude || link.pending || link.attach.type !== spec.type) continue;
    if (hookKey(link.programId, link.attach) !== key) continue;
    const program = ctx.state.program(link.programId);
    if (program) members.push({ link, program });
  }
  return members;
}

/** The hook context of `link`'s hook: its peers, and reloading from the recorded bytecode. */
export function hookContext(ctx: Ctx, link: Pick<LinkRecord, "id" | "programId" | "attach">): HookContext {
  return { peers: hookMembers(ctx, link.attach, link.programId, link.id), reload: (p) => reloadPlan(ctx, p) };
}

/** How to load a recorded program again: the same object file, global data and (pinned) maps. */
export async function reloadPlan(ctx: Ctx, program: ProgramRecord): Promise<ReloadPlan> {
  let objectPath: string;
  if ("path" in program.bytecode) {
    objectPath = program.bytecode.path;
  } else {
    const { url, digest } = program.bytecode.image;
    const pulled = await pullImage(ctx, { url: `${url.replace(/@sha256:[0-9a-f]+$/, "")}@${digest}` });
    objectPath = pulled.objectPath;
  }
  const globalData = Object.fromEntries(
    Object.entries(program.globalData).map((
      [name, value],
    ) => [name, Uint8Array.from(atob(value), (c) => c.charCodeAt(0))]),
  );
  return { objectPath, name: program.name, globalData, maps: program.maps };
}
