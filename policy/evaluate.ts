/**
 * The BpfPolicy evaluator: compiles every BpfPolicy into one effective policy (the union of the allow
 * rules; any matching deny rule wins) and decides one request for one subject, naming the rule and the
 * field of a refusal. The admission webhook, the controller, every node and `bpfd policy check` use it.
 *
 * @example
 * ```ts
 * const policy = compilePolicy([defaultPolicy]);
 * const d = policy.decide({ type: "xdp", iface: "eth0", priority: 10 }, { user: "alice", groups: [] });
 * if (!d.allowed) console.log(d.message);
 * ```
 * @module
 */
import { type BpfPolicy, crdSpelling, type PolicyRule, type Requester } from "../model/policy.ts";
import type { ProgramType } from "../model/schemas.ts";
import {
  anyPattern,
  compilePattern,
  compileSigner,
  compileTracepoint,
  fromRegistry,
  type Matcher,
  underDirectory,
} from "./match.ts";

/** What is asked, as far as it is known: absent attributes are checked when they are (node side). */
export interface PolicyRequest {
  type?: ProgramType;
  iface?: string;
  priority?: number;
  tracepoint?: string;
  fnName?: string;
  target?: string;
  bytecode?: { path: string } | { image: string };
  /** The verified signer of the image (`key sha256:...`), null when unsigned; undefined: not known yet. */
  signer?: string | null;
}

/** The attributes of a request a refusal can name. */
export type Fact =
  | "subject"
  | "type"
  | "iface"
  | "priority"
  | "tracepoint"
  | "fnName"
  | "target"
  | "path"
  | "image"
  | "signer";

/** Field names of a BpfProgramConfig (admission, controller, `bpfd policy check`). */
export const CONFIG_FIELDS: Record<Fact, string> = {
  subject: "metadata.annotations[bpfd.io/requested-by]",
  type: "spec.type",
  iface: "spec.attachpoint.interface",
  priority: "spec.priority",
  tracepoint: "spec.attachpoint.tracepoint",
  fnName: "spec.attachpoint.functionname",
  target: "spec.attachpoint.target",
  path: "spec.bytecode.path",
  image: "spec.bytecode.imageurl",
  signer: "spec.bytecode.imageurl",
};

/** A decision: allowed by a rule, or refused with the rule (if one applied) and the field. */
export type Decision =
  | { allowed: true; rule: string }
  | { allowed: false; rule?: string; fact: Fact; field: string; message: string };

interface Check {
  fact: Fact;
  /** Whether the request's value passes the rule's limit (only called when the request has the fact). */
  test(req: PolicyRequest): boolean;
  /** What the rule allows, for messages. */
  describe: string;
}

interface CompiledRule {
  id: string;
  deny: boolean;
  users: Set<string>;
  groups: Set<string>;
  checks: Check[];
  /** Allow rules: whether bytecode.path loads are allowed (only with bytecodePaths). */
  paths: boolean;
}

const has = (req: PolicyRequest, fact: Fact): boolean => {
  switch (fact) {
    case "path":
      return !!req.bytecode && "path" in req.bytecode;
    case "image":
      return !!req.bytecode && "image" in req.bytecode;
    case "subject":
      return true;
    default:
      return req[fact] !== undefined;
  }
};

function valueOf(req: PolicyRequest, fact: Fact): string {
  if (fact === "path" && req.bytecode && "path" in req.bytecode) return req.bytecode.path;
  if (fact === "image" && req.bytecode && "image" in req.bytecode) return req.bytecode.image;
  if (fact === "type" && req.type) return crdSpelling(req.type);
  const v = req[fact as keyof PolicyRequest];
  return v === null ? "(unsigned)" : String(v);
}

function compileRule(policy: string, rule: PolicyRule): CompiledRule {
  const deny = rule.effect === "Deny";
  const checks: Check[] = [];
  const add = (fact: Fact, list: string[] | undefined, compile: (p: string) => Matcher) => {
    if (!list) return;
    const m = anyPattern(list, deny, compile);
    checks.push({ fact, test: (req) => m(valueOf(req, fact)), describe: list.join(", ") });
  };
  if (rule.programTypes) {
    const types = new Set(rule.programTypes.map((t) => t.toLowerCase()));
    checks.push({
      fact: "type",
      test: (req) => types.has(req.type!),
      describe: rule.programTypes.join(", "),
    });
  }
  if (rule.bytecodePaths) {
    const dirs = rule.bytecodePaths;
    checks.push({
      fact: "path",
      test: (req) => dirs.some((d) => underDirectory(valueOf(req, "path"), d)),
      describe: `paths under ${dirs.join(", ")}`,
    });
  }
  if (rule.registries) {
    const regs = rule.registries;
    checks.push({
      fact: "image",
      test: (req) => regs.some((r) => fromRegistry(valueOf(req, "image"), r)),
      describe: `images from ${regs.join(", ")}`,
    });
  }
  if (rule.signers) {
    const ms = rule.signers.map((s) => {
      try {
        return compileSigner(s);
      } catch {
        return () => deny;
      }
    });
    checks.push({
      fact: "signer",
      test: (req) => typeof req.signer === "string" && ms.some((m) => m(req.signer as string)),
      describe: `images signed by ${rule.signers.map((s) => s.identity ?? "a listed key").join(", ")}`,
    });
  }
  add("iface", rule.interfaces, compilePattern);
  add("tracepoint", rule.tracepoints, compileTracepoint);
  add("fnName", rule.functions, compilePattern);
  if (rule.uprobeTargets) {
    const targets = rule.uprobeTargets;
    checks.push({
      fact: "target",
      test: (req) => {
        const t = valueOf(req, "target");
        return targets.some((p) => t.startsWith("/") ? p.startsWith("/") && underDirectory(t, p) : t === p);
      },
      describe: targets.join(", "),
    });
  }
  if (rule.priority) {
    const min = rule.priority.min ?? 0, max = rule.priority.max ?? 1000;
    checks.push({
      fact: "priority",
      test: (req) => req.priority! >= min && req.priority! <= max,
      describe: `${min}-${max}`,
    });
  }
  const users = new Set<string>(), groups = new Set<string>();
  for (const s of rule.subjects) {
    if (s.kind === "User") users.add(s.name);
    else if (s.kind === "Group") groups.add(s.name);
    else users.add(`system:serviceaccount:${s.namespace}:${s.name}`);
  }
  return { id: `${policy}/${rule.name}`, deny, users, groups, checks, paths: !!rule.bytecodePaths };
}

/** Why an allow rule does not allow `req`: its failing checks, in order (empty: it allows). */
function misses(rule: CompiledRule, req: PolicyRequest): Check[] {
  const out: Check[] = [];
  for (const c of rule.checks) {
    if (c.fact === "signer") {
      // Unknown before the pull; a path load is never signed.
      if (req.signer === undefined && !has(req, "path")) continue;
      if (!c.test(req)) out.push(c);
      continue;
    }
    if (has(req, c.fact) && !c.test(req)) out.push(c);
  }
  if (has(req, "path") && !rule.paths) {
    out.push({ fact: "path", test: () => false, describe: "no bytecode.path loads (no bytecodePaths)" });
  }
  return out;
}

/** A deny rule applies when every limit it sets matches what the request has (and it has them all). */
function denies(rule: CompiledRule, req: PolicyRequest): Check | undefined {
  for (const c of rule.checks) if (!has(req, c.fact) || !c.test(req)) return undefined;
  return rule.checks[0] ?? { fact: "subject", test: () => true, describe: "everything" };
}

const who = (s: Requester) => `user ${s.user}${s.groups.length ? ` (groups ${s.groups.join(", ")})` : ""}`;

/** The effective policy of a set of BpfPolicy objects. */
export class EffectivePolicy {
  readonly allows: CompiledRule[] = [];
  readonly denies: CompiledRule[] = [];
  /** How many BpfPolicy objects it was made of. */
  readonly sources: number;

  constructor(policies: BpfPolicy[]) {
    this.sources = policies.length;
    const sorted = [...policies].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    for (const p of sorted) {
      for (const r of p.spec.rules) {
        const c = compileRule(p.metadata.name, r);
        (c.deny ? this.denies : this.allows).push(c);
      }
    }
  }

  /** Decides `req` for `subject`; a refusal names its field with `fields` (default: the config's). */
  decide(req: PolicyRequest, subject: Requester, fields: Record<Fact, string> = CONFIG_FIELDS): Decision {
    const applies = (r: CompiledRule) =>
      r.users.has(subject.user) || subject.groups.some((g) => r.groups.has(g));
    for (const r of this.denies) {
      if (!applies(r)) continue;
      const hit = denies(r, req);
      if (hit) {
        const field = fields[hit.fact];
        const value = hit.fact === "subject" ? who(subject) : `${field} ${valueOf(req, hit.fact)}`;
        return {
          allowed: false,
          rule: r.id,
          fact: hit.fact,
          field,
          message: `denied by BpfPolicy rule ${r.id}: ${value} (${who(subject)})`,
        };
      }
    }
    let best: { rule: CompiledRule; misses: Check[] } | undefined;
    for (const r of this.allows) {
      if (!applies(r)) continue;
      const m = misses(r, req);
      if (m.length === 0) return { allowed: true, rule: r.id };
      if (!best || m.length < best.misses.length) best = { rule: r, misses: m };
    }
    if (!best) {
      return {
        allowed: false,
        fact: "subject",
        field: fields.subject,
        message: `no BpfPolicy rule allows ${who(subject)} to load or attach BPF programs`,
      };
    }
    const miss = best.misses[0];
    const field = fields[miss.fact];
    return {
      allowed: false,
      rule: best.rule.id,
      fact: miss.fact,
      field,
      message: `BpfPolicy rule ${best.rule.id} does not allow ${field} ${valueOf(req, miss.fact)} ` +
        `(allowed: ${miss.describe}) for ${who(subject)}`,
    };
  }
}

/** The effective policy of `policies`. */
export function compilePolicy(policies: BpfPolicy[]): EffectivePolicy {
  return new EffectivePolicy(policies);
}
