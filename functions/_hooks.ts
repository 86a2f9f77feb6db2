/**
 * What attach, detach, modify and unload share: bpfd's other links on a hook and how to load a program
 * again (as a dispatcher slot extension), the records of peers a change moved, detaching a link, and
 * TCX's proceed-on rule.
 *
 * @module
 */
import { type Attachment, type HookContext, type HookMember, isSharedHook } from "../kernel/attach/kind.ts";
import type { ReloadPlan } from "../kernel/chains/dispatcher.ts";
import type { Ctx } from "./_ctx.ts";
import { invalid } from "./_errors.ts";
import { globalDataBytes } from "./_global_data.ts";
import type { AttachSpec, LinkRecord, ProgramRecord } from "../model/schemas.ts";
import { hookKey } from "./_views.ts";
import { pullImage } from "./_images.ts";
import { openRecordedObject } from "../kernel/files.ts";

export { isSharedHook };

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

/**
 * How to load a recorded program again: the same object file (checked against the hash recorded at load;
 * an image by its digest), global data and (pinned) maps. A record from before hashes were kept gets
 * the file's hash now, checked from then on.
 */
export async function reloadPlan(ctx: Ctx, program: ProgramRecord): Promise<ReloadPlan> {
  const plan = { name: program.name, globalData: globalDataBytes(program.globalData), maps: program.maps };
  if ("path" in program.bytecode) {
    const { path, sha256 } = program.bytecode;
    const { file, sha256: now } = await openRecordedObject({ path, sha256 }, program.id);
    if (!sha256) {
      try {
        await ctx.state.update({ putPrograms: [{ ...program, bytecode: { path, sha256: now } }] });
      } catch (err) {
        file.close();
        throw err;
      }
      ctx.log.info("object hash recorded", { programId: program.id, path, sha256: now });
    }
    return { ...plan, objectPath: file.path, close: file.close };
  }
  const { url, digest } = program.bytecode.image;
  const pulled = await pullImage(ctx, { url: `${url.replace(/@sha256:[0-9a-f]+$/, "")}@${digest}` });
  return { ...plan, objectPath: pulled.objectPath };
}

/** The records of the peers a change on their hook moved: each peer's record with its new kernel side. */
export function movedPeers(ctx: Ctx, peers: Map<number, Attachment>): LinkRecord[] {
  const moved: LinkRecord[] = [];
  for (const [id, attachment] of peers) {
    const peer = ctx.state.link(id);
    if (peer) moved.push({ ...peer, ...attachment });
  }
  return moved;
}

/**
 * Detaches `link` and forgets it; the caller holds the hook's lock. On a shared hook the others stay, in
 * order. A clsact qdisc bpfd created stays while bpfd has other tc filters on the interface (they
 * inherit the duty to remove it) and goes with the last one, unless someone else's filters are on it.
 */
export async function detachLink(ctx: Ctx, link: LinkRecord): Promise<void> {
  const others = ctx.state.links().filter((l) =>
    l.id !== link.id && l.attach.type === "tc" && link.attach.type === "tc" && l.ifindex === link.ifindex &&
    l.attach.netns === link.attach.netns
  );
  const peers = await ctx.kernel.detach(link, {
    hook: hookContext(ctx, link),
    releaseQdisc: others.length === 0,
  });
  const heir = link.tc?.qdiscCreated && others[0]?.tc
    ? [{ ...others[0], tc: { ...others[0].tc, qdiscCreated: true } }]
    : [];
  await ctx.state.update({ deleteLinks: [link.id], putLinks: [...heir, ...movedPeers(ctx, peers)] });
  ctx.log.info("detached", { linkId: link.id, programId: link.programId, caller: ctx.caller });
}

/** TCX runs the next program only on TC_ACT_UNSPEC: proceed-on is the kernel's there, not a setting. */
export function checkTcxProceedOn(spec: AttachSpec, field = "attach.proceedOn"): void {
  if (spec.type !== "tcx") return;
  const given = [...spec.proceedOn].sort().join(",");
  if (given !== "dispatcher_return,pipe" && given !== "unspec") {
    throw invalid(
      field,
      "TCX decides proceed-on in the kernel: the next program runs only when one returns TC_ACT_UNSPEC (-1); " +
        'leave it at the default or ["unspec"] (type tc chains honour proceed-on in a dispatcher)',
    );
  }
}
