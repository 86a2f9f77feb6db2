/**
 * BpfPolicy on the node: `load`, `attach`, `modify` and `reconcile` ask here before anything reaches the
 * kernel, for the caller the runtime authenticated (or, in `reconcile` from a trusted caller, the config's
 * requester). A refusal is a 403 `policy_denied` naming the rule and the field, and one log line.
 *
 * @example
 * ```ts
 * enforceAttach(ctx, program, { type: "xdp", iface: "eth0", priority: 10 }); // throws BpfdError 403
 * ```
 * @module
 */
import type { Ctx } from "./_ctx.ts";
import { BpfdError } from "./_errors.ts";
import type { Requester } from "../model/policy.ts";
import type { AttachSpec, ProgramRecord, ProgramSpec } from "../model/schemas.ts";
import type { Fact, PolicyRequest } from "../policy/evaluate.ts";

/** The request fields a node refusal names. */
export const NODE_FIELDS: Record<Fact, string> = {
  subject: "caller",
  type: "programs.type",
  iface: "attach.iface",
  priority: "attach.priority",
  tracepoint: "attach.tracepoint",
  fnName: "attach.fnName",
  target: "attach.target",
  path: "bytecode.path",
  image: "bytecode.image.url",
  signer: "bytecode.image.url",
};

/** Who the policy is checked for in this ctx. */
export function subjectOf(ctx: Ctx): Requester {
  return ctx.policy?.subject ?? { user: ctx.caller.user, groups: ctx.caller.groups ?? [] };
}

/**
 * A ctx whose policy checks are made for `requester` (reconcile: the config's). Only a caller the policy
 * trusts (the controller) may name one; anyone else naming one gets a 403.
 */
export function actingFor(ctx: Ctx, requester: Requester | undefined): Ctx {
  const gate = ctx.policy;
  if (!gate || !requester) return ctx;
  if (!gate.trusts(ctx.caller.user)) {
    throw refusal(ctx, {
      message: `${ctx.caller.user} may not act for another user (only the controller names a requester)`,
      field: "requester",
    });
  }
  return {
    ...ctx,
    policy: { current: () => gate.current(), trusts: (u) => gate.trusts(u), subject: requester },
  };
}

function refusal(ctx: Ctx, r: { message: string; field: string; rule?: string }): BpfdError {
  const subject = subjectOf(ctx);
  ctx.log.warn("policy refused", {
    user: subject.user,
    groups: subject.groups,
    caller: ctx.caller.user,
    rule: r.rule,
    field: r.field,
    reason: r.message,
  });
  return new BpfdError(403, "policy_denied", r.message, {
    field: r.field,
    ...(r.rule ? { rule: r.rule } : {}),
  });
}

/** Throws a 403 unless the policy allows `req` for this ctx's subject. */
export function enforce(ctx: Ctx, req: PolicyRequest, fields: Record<Fact, string> = NODE_FIELDS): void {
  if (!ctx.policy) return;
  const d = ctx.policy.current().decide(req, subjectOf(ctx), fields);
  if (!d.allowed) throw refusal(ctx, d);
}

/** The bytecode as the policy sees it: a path with its symlinks resolved, or the image reference. */
async function bytecodeFact(bytecode: { path: string } | { image: { url: string } }) {
  if ("image" in bytecode) return { image: bytecode.image.url };
  const path = await Deno.realPath(bytecode.path).catch(() => bytecode.path);
  return { path };
}

/**
 * `load`: before anything is read or pulled (`signer` undefined), and again after the pull with the
 * verified signer (null: unsigned) and the programs the image declares.
 */
export async function enforceLoad(
  ctx: Ctx,
  bytecode: { path: string } | { image: { url: string } },
  opts: { programs?: ProgramSpec[]; signer?: string | null } = {},
): Promise<void> {
  if (!ctx.policy) return;
  const fact = await bytecodeFact(bytecode);
  const signer = "path" in fact ? null : opts.signer;
  const programs = opts.programs ?? [undefined];
  programs.forEach((p, i) => {
    const fields = { ...NODE_FIELDS, type: `programs.${i}.type` };
    enforce(ctx, {
      bytecode: fact,
      ...(p ? { type: p.type } : {}),
      ...(signer !== undefined ? { signer } : {}),
    }, fields);
  });
}

/** The policy request of attaching `program` as `spec`. */
export function attachRequest(program: ProgramRecord, spec: AttachSpec): PolicyRequest {
  const req: PolicyRequest = {
    type: program.type,
    bytecode: "path" in program.bytecode
      ? { path: program.bytecode.path }
      : { image: program.bytecode.image.url },
  };
  switch (spec.type) {
    case "xdp":
    case "tc":
    case "tcx":
      return { ...req, iface: spec.iface, priority: spec.priority };
    case "tracepoint":
      return { ...req, tracepoint: spec.tracepoint };
    case "kprobe":
    case "kretprobe":
      return { ...req, fnName: spec.fnName };
    case "uprobe":
    case "uretprobe":
      return { ...req, target: spec.target, ...(spec.fnName ? { fnName: spec.fnName } : {}) };
    default:
      return program.fnName ? { ...req, fnName: program.fnName } : req;
  }
}

/** `attach` and `modify`: the whole request (program type, bytecode, hook, priority). */
export function enforceAttach(ctx: Ctx, program: ProgramRecord, spec: AttachSpec): void {
  enforce(ctx, attachRequest(program, spec));
}
