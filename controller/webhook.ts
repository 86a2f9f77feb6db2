/**
 * bpfd's admission webhooks (hono, served over TLS by each controller replica): `/mutate/bpfprogramconfigs`
 * stamps `bpfd.io/requested-by`; `/validate/bpfprogramconfigs` refuses what BpfPolicy forbids the requesting
 * user (naming rule and field) and forged requesters; `/validate/bpfpolicies` refuses malformed policies
 * and warns about subjects nothing refers to.
 *
 * @example
 * ```ts
 * await serveWebhook(webhookApp({ policy: () => watch.current(), log }), { listen, certFile, keyFile });
 * ```
 * @module
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { BpfPolicy, REQUESTED_BY, type Requester } from "../model/policy.ts";
import type { EffectivePolicy } from "../policy/evaluate.ts";
import { configRequest, type ConfigSpecLike, requesterAnnotation } from "../policy/config.ts";
import { BadPattern, compilePattern, compileSigner, compileTracepoint } from "../policy/match.ts";
import type { Logger } from "../lib/log.ts";
import type { EventSpec } from "./reconciler.ts";
import { jsonEqual } from "./objects.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** What the webhook needs from the controller. */
export interface WebhookOptions {
  /** The effective BpfPolicy now. */
  policy: () => EffectivePolicy;
  log: Logger;
  /** Records an Event (best effort). */
  event?: (e: EventSpec) => Promise<void>;
  /** Names of groups and ServiceAccounts the cluster refers to, for warnings (undefined: no warnings). */
  knownSubjects?: () => Promise<{ groups: Set<string>; serviceAccounts: Set<string> }>;
}

/** An AdmissionReview answer. */
function review(uid: string, answer: Record<string, unknown>) {
  return { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response: { uid, ...answer } };
}

function refuse(uid: string, message: string, warnings?: string[]) {
  return review(uid, {
    allowed: false,
    status: { code: 403, reason: "Forbidden", message },
    ...(warnings?.length ? { warnings } : {}),
  });
}

const requesterOfReview = (req: Json): Requester => ({
  user: String(req.userInfo?.username ?? ""),
  groups: (req.userInfo?.groups ?? []).map(String),
});

/** Whether an update leaves the spec as it was (finalizers, labels, the controller's own writes). */
const specUnchanged = (req: Json) =>
  req.operation === "UPDATE" && jsonEqual(req.object?.spec, req.oldObject?.spec);

/** The annotation value the object must carry after the mutation. */
function expectedStamp(req: Json): string | undefined {
  if (specUnchanged(req)) return req.oldObject?.metadata?.annotations?.[REQUESTED_BY];
  return requesterAnnotation(requesterOfReview(req));
}

/** The JSON patch that makes the annotation `value` (or removes it). */
function stampPatch(obj: Json, value: string | undefined): unknown[] {
  const annotations = obj?.metadata?.annotations;
  const path = `/metadata/annotations/${REQUESTED_BY.replace("~", "~0").replace("/", "~1")}`;
  if (value === undefined) return annotations?.[REQUESTED_BY] !== undefined ? [{ op: "remove", path }] : [];
  if (!annotations) return [{ op: "add", path: "/metadata/annotations", value: { [REQUESTED_BY]: value } }];
  return [{ op: "add", path, value }];
}

/** Problems with a BpfPolicy that its schema cannot express: patterns, keys, duplicate rule names. */
export function policyProblems(policy: BpfPolicy): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  policy.spec.rules.forEach((r, i) => {
    const at = `spec.rules[${i}]`;
    if (seen.has(r.name)) out.push(`${at}.name: ${r.name} is used by an earlier rule`);
    seen.add(r.name);
    const lists = [["interfaces", compilePattern], ["tracepoints", compileTracepoint], [
      "functions",
      compilePattern,
    ]] as const;
    for (const [field, compile] of lists) {
      (r[field] ?? []).forEach((p, j) => {
        try {
          compile(p);
        } catch (err) {
          if (err instanceof BadPattern) out.push(`${at}.${field}[${j}]: ${err.message}`);
          else throw err;
        }
      });
    }
    (r.signers ?? []).forEach((s, j) => {
      try {
        compileSigner(s);
      } catch (err) {
        out.push(`${at}.signers[${j}]: ${(err as Error).message}`);
      }
    });
    if (r.priority?.min !== undefined && r.priority.max !== undefined && r.priority.min > r.priority.max) {
      out.push(`${at}.priority: min ${r.priority.min} is above max ${r.priority.max}`);
    }
  });
  return out;
}

/** The webhook's HTTP app (served with TLS by `serveWebhook`, tested with `app.request()`). */
export function webhookApp(opts: WebhookOptions): Hono {
  const app = new Hono();
  const log = opts.log;
  // Any pod can reach the Service: an AdmissionReview is a few KiB, the API server caps objects at ~1.5 MiB.
  app.use("*", bodyLimit({ maxSize: 3 << 20 }));

  app.get("/healthz", (c) => c.json({ ok: true }));

  app.post("/mutate/bpfprogramconfigs", async (c) => {
    const req = (await c.req.json()).request;
    const patch = stampPatch(req.object, expectedStamp(req));
    if (!patch.length) return c.json(review(req.uid, { allowed: true }));
    return c.json(
      review(req.uid, { allowed: true, patchType: "JSONPatch", patch: btoa(JSON.stringify(patch)) }),
    );
  });

  app.post("/validate/bpfprogramconfigs", async (c) => {
    const req = (await c.req.json()).request;
    if (req.operation === "DELETE") return c.json(review(req.uid, { allowed: true }));
    const obj = req.object;
    const name = String(obj?.metadata?.name ?? "");
    const want = expectedStamp(req);
    const have = obj?.metadata?.annotations?.[REQUESTED_BY];
    if (have !== want) {
      return c.json(refuse(
        req.uid,
        `metadata.annotations[${REQUESTED_BY}]: set by bpfd's admission webhook only ` +
          `(expected ${want ?? "none"}, got ${have ?? "none"})`,
      ));
    }
    if (specUnchanged(req) || obj?.metadata?.deletionTimestamp) {
      return c.json(review(req.uid, { allowed: true }));
    }
    const requester = requesterOfReview(req);
    const decision = opts.policy().decide(configRequest(obj.spec as ConfigSpecLike), requester);
    if (decision.allowed) return c.json(review(req.uid, { allowed: true }));
    log.warn("policy refused", {
      config: name,
      operation: req.operation,
      user: requester.user,
      groups: requester.groups,
      rule: decision.rule,
      field: decision.field,
      reason: decision.message,
    });
    await opts.event?.({
      kind: "BpfProgramConfig",
      name,
      uid: obj?.metadata?.uid,
      type: "Warning",
      reason: "PolicyDenied",
      message: `${req.operation.toLowerCase()} by ${requester.user} refused: ${decision.message}`,
    }).catch(() => {/* best effort, as every Event */});
    return c.json(refuse(req.uid, decision.message));
  });

  app.post("/validate/bpfpolicies", async (c) => {
    const req = (await c.req.json()).request;
    if (req.operation === "DELETE") return c.json(review(req.uid, { allowed: true }));
    const parsed = BpfPolicy.safeParse(req.object);
    const problems = parsed.success
      ? policyProblems(parsed.data)
      : parsed.error.issues.map((i) => `${fieldPath(i.path)}: ${i.message}`);
    if (problems.length) return c.json(refuse(req.uid, problems.join("; ")));
    const warnings = await subjectWarnings(parsed.data!, opts).catch((err) => {
      log.warn("policy subjects not checked", { error: String(err) });
      return [];
    });
    return c.json(review(req.uid, { allowed: true, ...(warnings.length ? { warnings } : {}) }));
  });
  return app;
}

/** A zod issue path as a field: `spec.rules[0].subjects[1].namespace`. */
function fieldPath(path: PropertyKey[]): string {
  return path.map((p, i) => typeof p === "number" ? `[${p}]` : `${i ? "." : ""}${String(p)}`).join("");
}

/** Warnings for Group and ServiceAccount subjects nothing in the cluster refers to (they match no one yet). */
async function subjectWarnings(policy: BpfPolicy, opts: WebhookOptions): Promise<string[]> {
  if (!opts.knownSubjects) return [];
  const known = await opts.knownSubjects();
  const out: string[] = [];
  for (const r of policy.spec.rules) {
    for (const s of r.subjects) {
      if (s.kind === "Group" && !s.name.startsWith("system:") && !known.groups.has(s.name)) {
        out.push(`rule ${r.name}: no RoleBinding or ClusterRoleBinding names group ${s.name}`);
      }
      if (s.kind === "ServiceAccount" && !known.serviceAccounts.has(`${s.namespace}/${s.name}`)) {
        out.push(`rule ${r.name}: ServiceAccount ${s.namespace}/${s.name} does not exist`);
      }
    }
  }
  return out;
}

/** Where and how the webhook listens. */
export interface WebhookServeOptions {
  /** host:port, e.g. 0.0.0.0:9443. */
  listen: string;
  certFile: string;
  keyFile: string;
  signal?: AbortSignal;
}

/** Serves `app` over TLS until `signal` aborts. */
export async function serveWebhook(app: Hono, opts: WebhookServeOptions): Promise<Deno.HttpServer> {
  const at = opts.listen.lastIndexOf(":");
  const cert = await Deno.readTextFile(opts.certFile);
  const key = await Deno.readTextFile(opts.keyFile);
  return Deno.serve({
    hostname: opts.listen.slice(0, at).replace(/^\[|\]$/g, ""),
    port: Number(opts.listen.slice(at + 1)),
    cert,
    key,
    signal: opts.signal,
    onListen: () => {},
  }, app.fetch);
}

/** The groups (Role/ClusterRoleBinding subjects) and ServiceAccounts (`ns/name`) of a cluster. */
export async function clusterSubjects(
  kc: import("@kubernetes/client-node").KubeConfig,
): Promise<{ groups: Set<string>; serviceAccounts: Set<string> }> {
  const k8s = await import("@kubernetes/client-node");
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const [crbs, rbs, sas] = await Promise.all([
    rbac.listClusterRoleBinding(),
    rbac.listRoleBindingForAllNamespaces(),
    core.listServiceAccountForAllNamespaces(),
  ]);
  const groups = new Set<string>();
  for (const b of [...crbs.items, ...rbs.items]) {
    for (const s of b.subjects ?? []) if (s.kind === "Group") groups.add(s.name);
  }
  return {
    groups,
    serviceAccounts: new Set(sas.items.map((sa) => `${sa.metadata?.namespace}/${sa.metadata?.name}`)),
  };
}
