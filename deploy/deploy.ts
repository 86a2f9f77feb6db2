/**
 * `deno task deploy [--kubeconfig F] [--image I] [--dry-run]` applies bpfd to a cluster: the CRDs (crds/),
 * then every object of manifests/manifests.ts, with server-side apply (field manager `bpfd-deploy`;
 * create-or-patch where the server does not know apply patches), waiting until the CRDs are
 * Established. It reports per object `created`, `configured` or `unchanged`; a second run changes nothing;
 * a run that fails midway deletes what it created.
 * `--dry-run` prints the objects as YAML and touches no cluster.
 *
 * `deno task undeploy [--kubeconfig F] [--all]` deletes the manifests' objects. The CRDs, and with them
 * users' BpfProgramConfigs and their BpfPrograms, stay unless `--all`: then the configs are deleted first
 * (while the controller still runs, so nodes unload), finalizers of what remains after `--timeout` are
 * dropped, and the CRDs go.
 *
 * @module
 */
import "../lib/quiet_deprecations.ts"; // first: before @kubernetes/client-node loads Node's punycode
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { crdDocuments } from "../crds/crds.ts";
import { GROUP, VERSION } from "../crds/schema.ts";
import { toYaml } from "../crds/yaml.ts";
import {
  type Manifest,
  manifestDocuments,
  type ManifestOptions,
  NAMESPACE,
  NODE_CA_SECRET,
} from "../manifests/manifests.ts";
import { registryOptions } from "./registries.ts";
import { ensureNodeCa, removeNodeCa } from "./tls.ts";
import { deployWebhook, undeployWebhook, webhookConfigurations } from "./webhook.ts";

export const FIELD_MANAGER = "bpfd-deploy";

export type Action = "created" | "configured" | "unchanged" | "deleted" | "absent";

export interface Change {
  kind: string;
  name: string;
  namespace?: string;
  action: Action;
  note?: string;
}

/** Every object `deploy` applies, CRDs first. */
export function deployDocuments(opts: ManifestOptions = {}): Manifest[] {
  return [...crdDocuments(), ...manifestDocuments(opts)];
}

const codeOf = (e: unknown) => (e as { code?: number })?.code;

function describe(o: Manifest): string {
  return `${o.kind} ${o.metadata.namespace ? o.metadata.namespace + "/" : ""}${o.metadata.name}`;
}

/**
 * A way to read and apply one kind of object. client-node's typed models drop fields they spell
 * differently (`enum` is `_enum` in V1JSONSchemaProps), so CRDs go through CustomObjectsApi, whose bodies
 * are sent as they are.
 */
interface Access {
  read(o: Manifest): Promise<Manifest>;
  patch(o: Manifest, strategy: k8s.PatchStrategy): Promise<Manifest>;
  create(o: Manifest): Promise<Manifest>;
}

function access(kc: k8s.KubeConfig): (o: Manifest) => Access {
  const api = k8s.KubernetesObjectApi.makeApiClient(kc);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const typed: Access = {
    read: (o) =>
      api.read({
        apiVersion: o.apiVersion,
        kind: o.kind,
        metadata: { name: o.metadata.name, namespace: o.metadata.namespace },
      }),
    patch: (o, strategy) =>
      api.patch(
        o,
        undefined,
        undefined,
        FIELD_MANAGER,
        strategy === k8s.PatchStrategy.ServerSideApply,
        strategy,
      ),
    create: (o) => api.create(o, undefined, undefined, FIELD_MANAGER),
  };
  const crd = { group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions" };
  const untyped: Access = {
    read: (o) => custom.getClusterCustomObject({ ...crd, name: o.metadata.name }),
    patch: (o, strategy) =>
      custom.patchClusterCustomObject({
        ...crd,
        name: o.metadata.name,
        body: o,
        fieldManager: FIELD_MANAGER,
        force: strategy === k8s.PatchStrategy.ServerSideApply ? true : undefined,
      }, k8s.setHeaderOptions("Content-Type", strategy)),
    create: (o) => custom.createClusterCustomObject({ ...crd, body: o, fieldManager: FIELD_MANAGER }),
  };
  return (o) => o.kind === "CustomResourceDefinition" ? untyped : typed;
}

async function read(a: Access, o: Manifest): Promise<Manifest | undefined> {
  try {
    return await a.read(o);
  } catch (e) {
    if (codeOf(e) === 404) return undefined;
    throw e;
  }
}

/** Applies one object: server-side apply, or create / merge patch on a server without it. */
async function applyOne(a: Access, o: Manifest): Promise<Change> {
  const before = await read(a, o).catch((e) => {
    throw new Error(`applying ${describe(o)}: ${errText(e)}`);
  });
  let after: Manifest;
  try {
    after = await a.patch(o, k8s.PatchStrategy.ServerSideApply);
  } catch (e) {
    if (codeOf(e) !== 415) throw new Error(`applying ${describe(o)}: ${errText(e)}`);
    // No server-side apply (before 1.16 or disabled): create, or merge-patch what is there.
    try {
      after = before ? await a.patch(o, k8s.PatchStrategy.MergePatch) : await a.create(o);
    } catch (e2) {
      throw new Error(`applying ${describe(o)}: ${errText(e2)}`);
    }
  }
  const action: Action = !before
    ? "created"
    : before.metadata.resourceVersion === after.metadata.resourceVersion
    ? "unchanged"
    : "configured";
  return { kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace, action };
}

function errText(e: unknown): string {
  const body = (e as { body?: unknown })?.body;
  if (typeof body === "string") {
    try {
      return JSON.parse(body).message ?? body;
    } catch {
      return body;
    }
  }
  if (body && typeof body === "object" && "message" in body) return String(body.message);
  return (e as Error)?.message ?? String(e);
}

async function waitEstablished(a: Access, crd: Manifest, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const cur = await read(a, crd);
    // deno-lint-ignore no-explicit-any
    const conds: any[] = cur?.status?.conditions ?? [];
    if (conds.some((c) => c.type === "Established" && c.status === "True")) return;
    if (Date.now() > deadline) {
      const why = conds.map((c) => `${c.type}=${c.status} ${c.message ?? ""}`).join("; ");
      throw new Error(
        `CRD ${crd.metadata.name} not Established after ${timeoutMs} ms (${why || "no status"})`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface DeployOptions extends ManifestOptions {
  kc: k8s.KubeConfig;
  /** How long to wait for the CRDs to be Established (default 60 s). */
  timeoutMs?: number;
  /** Called after each object. */
  onChange?: (c: Change) => void;
  /** Where the API server reaches the admission webhook (default: the controllers' Service). */
  webhookUrl?: string;
}

/**
 * Applies the CRDs, waits until they are Established, then applies the manifests. All or nothing for what
 * it creates: when a step fails (the API refuses an object, a CRD never gets Established), the objects this
 * run created are deleted again, newest first, and the error says so. Objects that existed before (an
 * upgrade) keep what was applied to them.
 */
export async function deploy(opts: DeployOptions): Promise<Change[]> {
  const via = access(opts.kc);
  const changes: Change[] = [];
  const note = (c: Change) => {
    changes.push(c);
    opts.onChange?.(c);
  };
  try {
    const crds = crdDocuments();
    for (const crd of crds) note(await applyOne(via(crd), crd));
    for (const crd of crds) await waitEstablished(via(crd), crd, opts.timeoutMs ?? 60_000);
    // The namespace first, then the node CA Secret, whose hash goes on the pod templates.
    const [namespace] = manifestDocuments(opts);
    note(await applyOne(via(namespace), namespace));
    const tls = await ensureNodeCa(opts.kc);
    note({ kind: "Secret", name: NODE_CA_SECRET, namespace: NAMESPACE, action: tls.action, note: tls.note });
    for (const o of manifestDocuments({ ...opts, tlsHash: tls.hash }).slice(1)) {
      note(await applyOne(via(o), o));
    }
    await deployWebhook(opts.kc, { ...opts, onChange: note });
  } catch (err) {
    const undone = await rollBack(opts.kc, changes.filter((c) => c.action === "created"), note);
    throw new Error(`${(err as Error).message}\n${undone}`);
  }
  return changes;
}

/** Deletes `created`, newest first (what is in a namespace it created goes with the namespace). */
async function rollBack(kc: k8s.KubeConfig, created: Change[], note: (c: Change) => void): Promise<string> {
  if (!created.length) return "nothing was created, nothing to roll back";
  const api = k8s.KubernetesObjectApi.makeApiClient(kc);
  const apiVersions = new Map(
    [...deployDocuments(), ...webhookConfigurations("")].map((o) => [o.kind, o.apiVersion]),
  ).set("Secret", "v1");
  const namespaces = new Set(created.filter((c) => c.kind === "Namespace").map((c) => c.name));
  const failed: string[] = [];
  for (const c of created.toReversed()) {
    if (c.namespace && namespaces.has(c.namespace)) continue;
    const o = {
      apiVersion: apiVersions.get(c.kind)!,
      kind: c.kind,
      metadata: { name: c.name, namespace: c.namespace },
    };
    try {
      note({ ...(await deleteOne(api, o)), note: "rolled back" });
    } catch (e) {
      failed.push((e as Error).message);
    }
  }
  return failed.length
    ? `rolling back the ${created.length} objects this run created failed: ${failed.join("; ")}`
    : `rolled back: the ${created.length} objects this run created are deleted`;
}

export interface UndeployOptions {
  kc: k8s.KubeConfig;
  /** Also delete every BpfProgramConfig, BpfProgram and the CRDs. */
  all?: boolean;
  /** How long to wait for configs to be unloaded by the controller before dropping finalizers (30 s). */
  timeoutMs?: number;
  onChange?: (c: Change) => void;
}

async function deleteOne(api: k8s.KubernetesObjectApi, o: Manifest): Promise<Change> {
  let action: Action = "deleted";
  try {
    await api.delete(
      { apiVersion: o.apiVersion, kind: o.kind, metadata: o.metadata },
      undefined,
      undefined,
      undefined,
      undefined,
      "Background",
    );
  } catch (e) {
    if (codeOf(e) !== 404) throw new Error(`deleting ${describe(o)}: ${errText(e)}`);
    action = "absent";
  }
  return { kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace, action };
}

async function dropFinalizers(custom: k8s.CustomObjectsApi, plural: string): Promise<void> {
  const list = await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural })
    // deno-lint-ignore no-explicit-any
    .catch((e) => codeOf(e) === 404 ? { items: [] } : Promise.reject(e)) as { items: any[] };
  for (const o of list.items) {
    if (!o.metadata.finalizers?.length) continue;
    await custom.patchClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural,
      name: o.metadata.name,
      body: [{ op: "replace", path: "/metadata/finalizers", value: [] }],
    }, k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch)).catch((e) => {
      if (codeOf(e) !== 404) throw e;
    });
  }
}

/**
 * Deletes what `deploy` made, workloads first. Without `all`, the CRDs stay (deleting a CRD deletes every
 * object of its kind, users' configs included).
 */
export async function undeploy(opts: UndeployOptions): Promise<Change[]> {
  const api = k8s.KubernetesObjectApi.makeApiClient(opts.kc);
  const custom = opts.kc.makeApiClient(k8s.CustomObjectsApi);
  const changes: Change[] = [];
  const note = (c: Change) => {
    changes.push(c);
    opts.onChange?.(c);
  };
  if (opts.all) {
    // Configs first, while the controller still runs: it has the nodes unload, then lets them go.
    const list = await custom.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: "bpfprogramconfigs",
    })
      // deno-lint-ignore no-explicit-any
      .catch((e) => codeOf(e) === 404 ? { items: [] } : Promise.reject(e)) as { items: any[] };
    for (const c of list.items) {
      await custom.deleteClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: "bpfprogramconfigs",
        name: c.metadata.name,
      }).catch((e) => {
        if (codeOf(e) !== 404) throw e;
      });
      note({ kind: "BpfProgramConfig", name: c.metadata.name, action: "deleted" });
    }
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    while (Date.now() < deadline) {
      const left = await custom.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: "bpfprogramconfigs",
      })
        // deno-lint-ignore no-explicit-any
        .catch(() => ({ items: [] })) as { items: any[] };
      if (!left.items.length) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  // The webhooks go before their controller, or what remains could not be changed (failurePolicy Fail).
  for (const c of await undeployWebhook(opts.kc)) note(c);
  const manifests = manifestDocuments().reverse();
  for (const o of manifests.filter((o) => o.kind !== "Namespace")) note(await deleteOne(api, o));
  if (opts.all) {
    // Whatever no controller finalized (none running, or too slow) is let go: the CRDs' deletion waits
    // for every object's finalizers.
    await dropFinalizers(custom, "bpfprogramconfigs");
    await dropFinalizers(custom, "bpfprograms");
    for (const crd of crdDocuments()) note(await deleteOne(api, crd));
  }
  const secret = await removeNodeCa(opts.kc);
  if (secret !== "kept") {
    note({ kind: "Secret", name: NODE_CA_SECRET, namespace: NAMESPACE, action: secret });
  }
  for (const o of manifests.filter((o) => o.kind === "Namespace")) note(await deleteOne(api, o));
  return changes;
}

function kubeConfigFrom(file: string | undefined): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}

const USAGE = `usage: deno task deploy [--kubeconfig F] [--image I] [--pull-policy P] [--replicas N]
                         [--aggregate-to-edit] [--webhook-url URL] [--insecure-registry HOST[:PORT]]...
                         [--registry-ca PEM-FILE]... [--kubelet-dir DIR] [--dry-run]
       deno task undeploy [--kubeconfig F] [--all] [--timeout SEC]

deploy applies crds/ and manifests/ (server-side apply) and waits until the CRDs are Established; it
makes the node runtimes' CA (Secret bpfd/bpfd-node-ca; the controller signs each runtime's own serving
certificate with it) unless one not made by deploy exists; --dry-run prints the objects instead.
--aggregate-to-edit aggregates the role bpfd-bpfprogramconfig-editor into the built-in edit and admin
roles (off by default: whoever may create a BpfProgramConfig runs code in the kernel of the nodes it
selects). --insecure-registry and --registry-ca go into the node runtimes' configuration (ConfigMap
bpfd/bpfd-node-config): bytecode images from those registries over plain HTTP, or over TLS signed by that
CA. --kubelet-dir is the nodes' kubelet --root-dir (default /var/lib/kubelet), where the CSI driver's
sockets and map volumes go (docs/csi.md). A deploy that fails midway deletes what it created. undeploy
deletes them; --all also deletes every
BpfProgramConfig, BpfProgram and the CRDs (without it, users' configs and the CRDs stay).`;

if (import.meta.main) {
  const [command, ...rest] = Deno.args;
  const { values } = parseArgs({
    args: rest,
    options: {
      kubeconfig: { type: "string" },
      image: { type: "string" },
      "pull-policy": { type: "string" },
      replicas: { type: "string" },
      "dry-run": { type: "boolean" },
      "aggregate-to-edit": { type: "boolean" },
      "webhook-url": { type: "string" },
      "insecure-registry": { type: "string", multiple: true },
      "registry-ca": { type: "string", multiple: true },
      "kubelet-dir": { type: "string" },
      all: { type: "boolean" },
      timeout: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help || (command !== "deploy" && command !== "undeploy")) {
    console.log(USAGE);
    Deno.exit(values.help ? 0 : 2);
  }
  const policy = values["pull-policy"];
  if (policy && !["Always", "IfNotPresent", "Never"].includes(policy)) {
    console.error(`--pull-policy: must be Always, IfNotPresent or Never, not ${policy}`);
    Deno.exit(2);
  }
  const replicas = values.replicas === undefined ? undefined : Number(values.replicas);
  if (replicas !== undefined && !(Number.isInteger(replicas) && replicas >= 1)) {
    console.error(`--replicas: must be a positive integer, not ${values.replicas}`);
    Deno.exit(2);
  }
  const registries = await registryOptions(values["insecure-registry"], values["registry-ca"]).catch((e) => {
    console.error((e as Error).message);
    Deno.exit(2);
  });
  const show = (c: Change) =>
    console.log(
      `${c.kind.toLowerCase()}/${c.name}${c.namespace ? ` (${c.namespace})` : ""} ${c.action}` +
        (c.note ? ` (${c.note})` : ""),
    );
  try {
    if (command === "deploy") {
      const mo: ManifestOptions = {
        image: values.image,
        imagePullPolicy: policy as ManifestOptions["imagePullPolicy"],
        replicas,
        aggregateToEdit: values["aggregate-to-edit"],
        ...registries,
        kubeletDir: values["kubelet-dir"],
      };
      if (values["dry-run"]) {
        console.log(deployDocuments(mo).map((d) => "---\n" + toYaml(d)).join(""));
        console.log(
          `# Secret ${NAMESPACE}/${NODE_CA_SECRET} (the node runtimes' CA) is made by deploy`,
        );
      } else {
        const changes = await deploy({
          ...mo,
          kc: kubeConfigFrom(values.kubeconfig),
          onChange: show,
          webhookUrl: values["webhook-url"],
        });
        const n = (a: Action) => changes.filter((c) => c.action === a).length;
        console.log(`${n("created")} created, ${n("configured")} configured, ${n("unchanged")} unchanged`);
      }
    } else {
      await undeploy({
        kc: kubeConfigFrom(values.kubeconfig),
        all: values.all,
        timeoutMs: values.timeout ? Number(values.timeout) * 1000 : undefined,
        onChange: show,
      });
    }
  } catch (e) {
    console.error(`${command}: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
