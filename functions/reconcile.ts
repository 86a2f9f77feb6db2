/**
 * `reconcile`: converges this node to one BpfProgram's desired state — the BpfProgramConfig spec the
 * controller sends (or `null`: nothing may stay loaded for it) — and reports what is actually there.
 *
 * Programs reconcile loads carry the metadata `bpfd.io/owner: <BpfProgram name>` (plus `bpfd.io/config`
 * and `bpfd.io/spec-hash`), so it finds what it owns with `list`, and their records say they were loaded
 * by reconcile for that owner (`reconciledFor`, which no caller can set): only those are adopted. It is
 * idempotent: with the owned program loaded from the same spec and its attachment alive, it changes nothing. It repairs drift: a program or
 * link gone from the kernel behind bpfd's back is forgotten and loaded/attached again; a changed spec
 * replaces the program (unload, then load and attach). A failed attach unloads what it just loaded, so a
 * failure leaves nothing half-done; the error goes back to the caller (HTTP 4xx with the node's message).
 * It uses the same building blocks as the other functions: `list`, `load`, `attach`, `detach`, `unload`
 * are invoked with the caller's ctx.
 *
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
import { pruneVanished } from "./_records.ts";
import { type AttachSpecInput, DEFAULT_PRIORITY, type ProgramView } from "../model/schemas.ts";
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
  }
}

/** The load request a spec makes (without metadata). */
export function loadFor(spec: Spec, mapOwnerId?: number): z.input<typeof LoadInput> {
  const b = spec.bytecode;
  const bytecode = b.path !== undefined ? { path: b.path } : {
    image: {
      url: b.imageurl!,
      pullPolicy: b.imagepullpolicy ?? "IfNotPresent",
      ...(b.imagepullsecret ? { auth: { secretRef: b.imagepullsecret } } : {}),
    },
  };
  const fnName = (spec.type === "Fentry" || spec.type === "Fexit")
    ? spec.attachpoint?.functionname
    : undefined;
  return {
    bytecode,
    programs: [{ name: spec.name, type: RUNTIME_TYPE[spec.type], ...(fnName ? { fnName } : {}) }],
    globalData: spec.globaldata ?? {},
    ...(mapOwnerId ? { mapOwnerId } : {}),
  };
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/** A short hash of what a spec asks the kernel for (load and attach requests). */
export async function specHash(load: unknown, attach: unknown): Promise<string> {
  const data = new TextEncoder().encode(JSON.stringify(canonical({ load, attach })));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest.slice(0, 12), (b) => b.toString(16).padStart(2, "0")).join("");
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
  let current = await forgetVanished(ctx, await owned(ctx, input.name), actions);
  const spec = input.spec;

  const unloadAll = async (views: ProgramView[], why: string) => {
    for (const v of views) {
      await invoke(unload, { programId: v.id }, ctx);
      actions.push(`unloaded ${v.id} (${why})`);
    }
  };

  if (spec === null) {
    await unloadAll(current, "not desired");
    return { name: input.name, programs: {}, changed: actions.length > 0, actions };
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
  const loadReq = loadFor(spec, mapOwnerId);
  const attachReq = attachFor(spec);
  const hash = await specHash(loadReq, attachReq);

  // Keep one program loaded from this very spec; everything else this owner has goes.
  const keep = current.find((v) => v.program?.metadata[HASH_KEY] === hash);
  const stale = current.filter((v) => v !== keep);
  // What is loaded stays (a newer policy does not unload it); nothing new passes a policy that forbids it.
  if (!keep || (attachReq && keep.links.length === 0)) enforce(ctx, configRequest(spec), CONFIG_FIELDS);
  await unloadAll(stale, keep ? "duplicate" : "spec changed");
  current = keep ? [keep] : [];

  let view = keep;
  if (!view) {
    const loaded = await invoke(load, {
      ...loadReq,
      metadata: {
        [OWNER_KEY]: input.name,
        ...(input.config ? { [CONFIG_KEY]: input.config } : {}),
        [HASH_KEY]: hash,
      },
    }, ctx);
    view = loaded.programs[0];
    actions.push(`loaded ${view.id}`);
  }
  if (attachReq) {
    // Extra attachments (e.g. left by an interrupted earlier run) go; a missing one is made.
    for (const link of view.links.slice(1)) {
      await invoke(detach, { linkId: link.id }, ctx);
      actions.push(`detached link ${link.id} of ${view.id} (extra)`);
    }
    if (view.links.length === 0) {
      try {
        const a = await invoke(attach, { programId: view.id, attach: attachReq }, ctx);
        actions.push(`attached ${view.id} as link ${a.linkId}`);
      } catch (err) {
        if (!keep) {
          // Leave nothing half-done: what this call loaded goes again.
          await invoke(unload, { programId: view.id }, ctx).catch(() => {});
        }
        throw err;
      }
    }
  }
  const [now] = (await owned(ctx, input.name)).filter((v) => v.id === view.id);
  const programs = now ? { [String(now.id)]: stateOf(now, spec) } : {};
  if (actions.length) ctx.log.info("reconciled", { owner: input.name, actions, caller: ctx.caller });
  return {
    name: input.name,
    programs: programs as ReconcileOutput["programs"],
    changed: actions.length > 0,
    actions,
  };
}
