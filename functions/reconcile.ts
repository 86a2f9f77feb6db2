/**
 * `reconcile`: converges this node to one BpfProgram's desired state — the BpfProgramConfig spec the
 * controller sends (or `null`: nothing may stay loaded for it) — and reports what is actually there.
 *
 * Programs reconcile loads carry the metadata `bpfd.io/owner: <BpfProgram name>` (plus `bpfd.io/config`
 * and `bpfd.io/spec-hash`, the hash of the bytecode part), and their records say they were loaded by
 * reconcile for that owner (`reconciledFor`, which no caller can set): only those are adopted. It makes
 * the smallest change (docs/day-two.md): priority or proceed-on → `modify`; another attach point → the new
 * link, then the old one goes; another bytecode (or an `Always` tag's new digest) → the new program is
 * loaded and attached before the old one goes, with new maps or the old ones (`mapreuse: Keep`). A
 * failure leaves the running program as it was; the error goes back to the caller (HTTP 4xx).
 * @example
 * ```sh
 * deno task invoke reconcile '{"name":"xdp-pass-all-nodes-node1","config":"xdp-pass-all-nodes",
 *   "spec":{"name":"xdp_counter","type":"XDP","attachpoint":{"interface":"eth0"},
 *   "bytecode":{"path":"/abs/bytecode/build/xdp_counter.bpf.o"}}}'
 * ```
 * @module
 */
import { z } from "zod";
import type { Ctx } from "./_ctx.ts";
import { defineFunction, invoke } from "./_define.ts";
import { conflict } from "./_errors.ts";
import {
  AttachSpec,
  type AttachSpecInput,
  DEFAULT_PRIORITY,
  type LinkRecord,
  type ProgramView,
} from "../model/schemas.ts";
import { resolveImage } from "./_images.ts";
import { orderChange, samePlacement, shortHash } from "./_placement.ts";
import { pruneVanished } from "./_records.ts";
import { hookKey } from "./_views.ts";
import { modify } from "./modify.ts";
import { attach } from "./attach.ts";
import { detach } from "./detach.ts";
import { list } from "./list.ts";
import { load, LoadInput } from "./load.ts";
import { unload } from "./unload.ts";
import { actingFor, enforce } from "./_policy.ts";
import { CONFIG_FIELDS } from "../policy/evaluate.ts";
import { configRequest } from "../policy/config.ts";
import {
  type AttachPoint,
  BpfProgramConfigSpec,
  CRD_TYPE,
  ProgramState,
  RUNTIME_TYPE,
} from "../crds/schema.ts";
import { ReconcileInput, ReconcileOutput } from "../crds/reconcile.ts";
import { CONFIG_KEY, HASH_KEY, OWNER_KEY } from "../model/names.ts";

type Spec = z.output<typeof BpfProgramConfigSpec>;

/** The attach request a spec makes (node-runtime form). */
export function attachFor(spec: Spec): AttachSpecInput | undefined {
  const ap: AttachPoint = spec.attachpoint ?? {};
  const priority = spec.priority ?? DEFAULT_PRIORITY;
  const defined = <T extends Record<string, unknown>>(o: T) =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  switch (spec.type) {
    case "XDP":
      return defined({
        type: "xdp" as const,
        iface: ap.interface!,
        priority,
        proceedOn: ap.proceedon as never,
        mode: ap.mode,
      });
    case "TC":
    case "TCX":
      return defined({
        type: RUNTIME_TYPE[spec.type] as "tc" | "tcx",
        iface: ap.interface!,
        direction: ap.direction!,
        priority,
        proceedOn: spec.type === "TC" ? ap.proceedon as never : undefined,
      });
    case "Tracepoint":
      return { type: "tracepoint", tracepoint: ap.tracepoint! };
    case "Kprobe":
    case "Kretprobe":
      return defined({
        type: RUNTIME_TYPE[spec.type] as "kprobe" | "kretprobe",
        fnName: ap.functionname!,
        offset: ap.offset,
      });
    case "Uprobe":
    case "Uretprobe":
      return defined({
        type: RUNTIME_TYPE[spec.type] as "uprobe" | "uretprobe",
        target: ap.target!,
        fnName: ap.functionname,
        offset: ap.offset,
        pid: ap.pid,
      });
    case "Fentry":
    case "Fexit":
      return { type: RUNTIME_TYPE[spec.type] as "fentry" | "fexit" };
    case "RawTracepoint":
      return { type: "raw_tracepoint", tracepoint: ap.rawtracepoint! };
    case "TpBtf":
      return { type: "tp_btf" };
    case "PerfEvent":
      return defined({
        type: "perf_event" as const,
        event: ap.event,
        frequency: ap.frequency,
        period: ap.period,
        cpu: ap.cpu,
      });
  }
}

/** How a load request is made beyond the spec: the maps to share, the pull secret the controller sent. */
export interface LoadForOptions {
  mapOwnerId?: number;
  pullSecret?: { dockerConfigJson: string };
}

/** The load request a spec makes (without metadata). */
export function loadFor(spec: Spec, opts: LoadForOptions = {}): z.input<typeof LoadInput> {
  const { mapOwnerId, pullSecret } = opts;
  const b = spec.bytecode;
  const auth = pullSecret
    ? { dockerConfigJson: pullSecret.dockerConfigJson }
    : b.imagepullsecret
    ? { secretRef: b.imagepullsecret }
    : undefined;
  const bytecode = b.path !== undefined ? { path: b.path } : {
    image: { url: b.imageurl!, pullPolicy: b.imagepullpolicy ?? "IfNotPresent", ...(auth ? { auth } : {}) },
  };
  const fnName = (spec.type === "Fentry" || spec.type === "Fexit" || spec.type === "TpBtf")
    ? spec.attachpoint?.functionname
    : undefined;
  return {
    bytecode,
    programs: [{ name: spec.name, type: RUNTIME_TYPE[spec.type], ...(fnName ? { fnName } : {}) }],
    globalData: spec.globaldata ?? {},
    ...(mapOwnerId ? { mapOwnerId } : {}),
  };
}

/**
 * A short hash of what decides the loaded program: the load request without credentials, and the digest
 * an `Always` image's tag names now. Placement and order are not in it: they change without a reload.
 */
export async function bytecodeHash(load: z.input<typeof LoadInput>, digest?: string): Promise<string> {
  const bytecode = "image" in load.bytecode
    ? { image: { ...load.bytecode.image, auth: undefined } }
    : load.bytecode;
  return await shortHash({ load: { ...load, bytecode }, digest });
}

function stateOf(view: ProgramView, spec: Spec | undefined): z.input<typeof ProgramState> {
  const p = view.program!;
  const link = view.links[0];
  return {
    name: p.name,
    type: CRD_TYPE[p.type],
    tag: p.tag,
    attachpoint: spec?.attachpoint ?? {},
    maps: p.maps,
    mappinpath: p.mapPinPath,
    ...(link ? { linkid: link.id } : {}),
    loadedby: p.loadedBy.user,
    loadedat: p.loadedAt,
    ...("image" in p.bytecode ? { digest: p.bytecode.image.digest } : {}),
  };
}

/** Forgets records of programs and links the kernel no longer has (drift behind bpfd's back). */
async function forgetVanished(ctx: Ctx, views: ProgramView[], actions: string[]): Promise<ProgramView[]> {
  const gone = await pruneVanished(ctx, views.map((v) => v.id));
  for (const id of gone.programs) actions.push(`forgot ${id} (gone from the kernel)`);
  for (const v of views) {
    const dead = gone.links.filter((l) => l.programId === v.id).map((l) => l.id);
    if (dead.length) actions.push(`forgot link ${dead.join(", ")} of ${v.id} (detached behind bpfd's back)`);
  }
  return views.filter((v) => !gone.programs.includes(v.id)).map((v) => ({
    ...v,
    links: ctx.state.links(v.id),
  }));
}

/** The programs reconcile itself loaded for `owner` (metadata alone can be any caller's: not trusted). */
async function owned(ctx: Ctx, owner: string): Promise<ProgramView[]> {
  const { programs } = await invoke(list, { metadata: { [OWNER_KEY]: owner } }, ctx);
  return programs.filter((v) => v.program?.reconciledFor === owner);
}

export const reconcile = defineFunction({
  name: "reconcile",
  summary: "Converge the node to one BpfProgram's desired state; report what is loaded.",
  input: ReconcileInput,
  output: ReconcileOutput,
  handler(input, ctx) {
    // One owner at a time: the controller's retries and resyncs never interleave on a node. What it loads
    // is recorded as loaded for this owner (ctx.reconciling), which no request can claim.
    return ctx.locks.with(
      [`owner:${input.name}`],
      () => converge(input, { ...ctx, reconciling: input.name }),
    );
  },
});

async function converge(input: z.output<typeof ReconcileInput>, caller: Ctx): Promise<ReconcileOutput> {
  const ctx = actingFor(caller, input.requester);
  const actions: string[] = [];
  const current = await forgetVanished(ctx, await owned(ctx, input.name), actions);
  const spec = input.spec;
  const done = (programs: ReconcileOutput["programs"], waiting?: string): ReconcileOutput => {
    if (actions.length) ctx.log.info("reconciled", { owner: input.name, actions, caller: ctx.caller });
    return {
      name: input.name,
      programs,
      changed: actions.length > 0,
      actions,
      ...(waiting ? { waiting } : {}),
    };
  };
  const unloadAll = async (views: ProgramView[], why: string) => {
    for (const v of views) {
      await invoke(unload, { programId: v.id }, ctx);
      actions.push(`unloaded ${v.id} (${why})`);
    }
  };

  if (spec === null) {
    await unloadAll(current, "not desired");
    return done({});
  }

  let mapOwnerId: number | undefined;
  if (input.mapOwner) {
    const owners = await owned(ctx, input.mapOwner);
    const alive = owners.find((v) => ctx.kernel.programAlive(v.id));
    if (!alive) {
      throw conflict(`the map owner ${input.mapOwner} has no program loaded on this node (yet)`, {
        field: "mapOwner",
      });
    }
    mapOwnerId = alive.id;
  }
  const loadReq = loadFor(spec, { mapOwnerId, pullSecret: input.pullSecret });
  const attachReq = attachFor(spec);
  const hash = await bytecodeHash(loadReq, await currentDigest(ctx, loadReq));

  // The program loaded from this very bytecode stays (its order and placement are adjusted); a bytecode
  // change loads the new one and attaches it before the old one goes (make-before-break).
  const keep = current.find((v) => v.program?.metadata[HASH_KEY] === hash);
  let old = current.filter((v) => v !== keep);
  let view = keep, waiting: string | undefined, fresh = false;
  if (!view && old.length && input.allowReload === false) {
    [view, ...old] = old;
    waiting = "a bytecode change waits for its turn in the roll-out";
  } else if (!view) {
    // Nothing new passes a policy that forbids it (what is loaded stays: a newer policy does not unload it).
    enforce(ctx, configRequest(spec), CONFIG_FIELDS);
    const reuse = !mapOwnerId && spec.mapreuse === "Keep" ? old[0]?.id : undefined;
    const loaded = await invoke(load, {
      ...loadReq,
      ...(reuse ? { mapOwnerId: reuse } : {}),
      metadata: {
        [OWNER_KEY]: input.name,
        ...(input.config ? { [CONFIG_KEY]: input.config } : {}),
        [HASH_KEY]: hash,
      },
    }, ctx);
    view = loaded.programs[0];
    fresh = true;
    actions.push(`loaded ${view.id}${reuse ? ` (maps of ${reuse} kept)` : ""}`);
  }
  if (attachReq) {
    // A new attachment of a kept program (attached again, or moved) passes the policy too.
    const want = AttachSpec.parse(attachReq);
    if (!fresh && !ctx.state.links(view.id).some((l) => !l.pending && samePlacement(l.attach, want))) {
      enforce(ctx, configRequest(spec), CONFIG_FIELDS);
    }
    try {
      await placeLinks(ctx, view, { attachReq, actions });
    } catch (err) {
      // A hook that holds one program only: the old one makes room (see makeRoom), else the error stands.
      const room = fresh ? await makeRoom(ctx, view.id, { attachReq, actions, old }) : [];
      try {
        if (!room.length) throw err;
        await placeLinks(ctx, view, { attachReq, actions });
      } catch (err2) {
        // Leave nothing half-done: the old links come back, what this call loaded goes again.
        for (const link of room.reverse()) {
          await invoke(attach, { programId: link.programId, attach: link.attach }, ctx);
        }
        if (fresh) await invoke(unload, { programId: view.id }, ctx).catch(() => {/* reported: err2 */});
        throw err2;
      }
    }
  }
  await unloadAll(old, keep ? "duplicate" : "replaced");
  const [now] = (await owned(ctx, input.name)).filter((v) => v.id === view.id);
  const programs = now ? { [String(now.id)]: stateOf(now, spec) } : {};
  return done(programs as ReconcileOutput["programs"], waiting);
}

/**
 * When the new program cannot sit beside the old one (XDP or TC where the kernel refuses the extension
 * programs a dispatcher needs), it can only take its place: the old links on that hook go first (a short
 * gap, documented in docs/day-two.md). Returns them, so a failure can attach them again.
 */
async function makeRoom(
  ctx: Ctx,
  programId: number,
  { attachReq, actions, old }: { attachReq: AttachSpecInput; actions: string[]; old: ProgramView[] },
): Promise<LinkRecord[]> {
  const key = hookKey(programId, AttachSpec.parse(attachReq));
  const blocking = old.flatMap((v) => ctx.state.links(v.id))
    .filter((l) => !l.pending && hookKey(l.programId, l.attach) === key);
  for (const link of blocking) {
    await invoke(detach, { linkId: link.id }, ctx);
    actions.push(`detached link ${link.id} of ${link.programId} (the hook holds one program)`);
  }
  return blocking;
}

/** The digest an `Always` image's tag names now (a manifest HEAD); undefined for other sources. */
async function currentDigest(ctx: Ctx, load: z.input<typeof LoadInput>): Promise<string | undefined> {
  if (!("image" in load.bytecode) || load.bytecode.image.pullPolicy !== "Always") return undefined;
  return await resolveImage(ctx, load.bytecode.image, "spec.bytecode.imageurl");
}

/**
 * Gives `view` exactly one link where `attachReq` says: a link already there keeps its place (only its
 * priority or proceed-on is modified); otherwise the new link is made before the old ones go, unless
 * they hold the same hook (one program sits once on a hook: those go first).
 */
async function placeLinks(
  ctx: Ctx,
  view: ProgramView,
  { attachReq, actions }: { attachReq: AttachSpecInput; actions: string[] },
): Promise<void> {
  const want = AttachSpec.parse(attachReq);
  const links = ctx.state.links(view.id).filter((l) => !l.pending);
  const here = links.find((l) => samePlacement(l.attach, want));
  if (here) {
    const change = orderChange(here.attach, want);
    if (change) {
      await invoke(modify, { linkId: here.id, ...change }, ctx);
      actions.push(`modified link ${here.id} of ${view.id} (${Object.keys(change).join(", ")})`);
    }
  }
  const sameHook = (l: LinkRecord) => hookKey(view.id, l.attach) === hookKey(view.id, want);
  const extra = links.filter((l) => l !== here);
  const moving = here ? [] : extra.filter(sameHook);
  for (const link of moving) {
    await invoke(detach, { linkId: link.id }, ctx);
    actions.push(`detached link ${link.id} of ${view.id} (moves on its hook)`);
  }
  if (!here) {
    try {
      const a = await invoke(attach, { programId: view.id, attach: attachReq }, ctx);
      actions.push(`attached ${view.id} as link ${a.linkId}`);
    } catch (err) {
      // The link that moved on its hook goes back where it was.
      for (const link of moving) await invoke(attach, { programId: view.id, attach: link.attach }, ctx);
      throw err;
    }
  }
  for (const link of extra.filter((l) => here || !sameHook(l))) {
    await invoke(detach, { linkId: link.id }, ctx);
    actions.push(`detached link ${link.id} of ${view.id} (${here ? "extra" : "moved"})`);
  }
}
