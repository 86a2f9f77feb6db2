/**
 * What a NodePublishVolume / NodeUnpublishVolume request asks for, checked before anything is looked up or
 * mounted: the volume id, the pod (podInfoOnMount), the config and map names (`bpfd.io/config`,
 * `bpfd.io/maps`), read or write, and a target path that is this pod's CSI volume directory under the
 * kubelet's pods directory. Every refusal is `invalid_argument` and names the field.
 *
 * @example
 * ```ts
 * const req = publishRequest(grpcRequest, { kubeletDir: "/var/lib/kubelet", maxMapsPerVolume: 16 });
 * ```
 * @module
 */
import { CsiError } from "./errors.ts";

/** The volume attribute naming the BpfProgramConfig. */
export const CONFIG_ATTRIBUTE = "bpfd.io/config";
/** The volume attribute listing the maps, comma-separated. */
export const MAPS_ATTRIBUTE = "bpfd.io/maps";

/** The pod a volume is for, as the kubelet tells it (CSIDriver `podInfoOnMount: true`). */
export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
  serviceAccount: string;
}

/** A checked NodePublishVolume request. */
export interface PublishRequest {
  volumeId: string;
  targetPath: string;
  pod: PodRef;
  config: string;
  maps: string[];
  /** The pod's volume is not readOnly: it asks to write (needs the writer grant). */
  writable: boolean;
}

/** The NodePublishVolume fields this reads (proto-loader's camelCase names, defaults filled in). */
export interface RawPublishRequest {
  volumeId?: string;
  targetPath?: string;
  readonly?: boolean;
  volumeContext?: Record<string, string>;
  volumeCapability?: { block?: unknown; mount?: unknown } | null;
}

/** What the checks depend on. */
export interface RequestLimits {
  kubeletDir: string;
  maxMapsPerVolume: number;
}

const POD_INFO = {
  namespace: "csi.storage.k8s.io/pod.namespace",
  name: "csi.storage.k8s.io/pod.name",
  uid: "csi.storage.k8s.io/pod.uid",
  serviceAccount: "csi.storage.k8s.io/serviceAccount.name",
} as const;
/** Keys the kubelet adds to every volume context. */
const KUBELET_KEYS = new Set<string>([...Object.values(POD_INFO), "csi.storage.k8s.io/ephemeral"]);

const VOLUME_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const POD_UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A map's name as the object file has it (BPF_OBJ_NAME_LEN: at most 15 characters in the kernel). */
const MAP_NAME = /^[A-Za-z_][A-Za-z0-9_.]{0,62}$/;

const invalid = (message: string) => new CsiError("invalid_argument", message);

/** The volume id, checked (it names the volume's staging directory). */
export function volumeIdOf(raw: { volumeId?: string }): string {
  const id = raw.volumeId ?? "";
  if (!VOLUME_ID.test(id)) {
    throw invalid(`volume_id ${JSON.stringify(id.slice(0, 140))}: 1-128 characters [A-Za-z0-9._-]`);
  }
  return id;
}

/** A kubelet CSI volume directory, `<kubeletDir>/pods/<uid>/volumes/kubernetes.io~csi/<name>/mount`. */
export function targetPathOf(raw: { targetPath?: string }, kubeletDir: string, podUid?: string): string {
  const path = raw.targetPath ?? "";
  const pods = `${kubeletDir.replace(/\/+$/, "")}/pods/`;
  const rest = path.startsWith(pods) ? path.slice(pods.length).split("/") : [];
  const [uid, volumes, plugin, name, mount] = rest;
  const ok = rest.length === 5 && POD_UID.test(uid) && volumes === "volumes" &&
    plugin === "kubernetes.io~csi" &&
    /^[A-Za-z0-9._-]+$/.test(name) && name !== "." && name !== ".." && mount === "mount";
  if (!ok) {
    throw invalid(
      `target_path ${JSON.stringify(path.slice(0, 300))} is not a pod's CSI volume directory ` +
        `(${pods}<pod uid>/volumes/kubernetes.io~csi/<volume>/mount)`,
    );
  }
  if (podUid !== undefined && uid !== podUid) {
    throw invalid(`target_path ${path} is not under pod ${podUid}'s directory`);
  }
  return path;
}

function podOf(context: Record<string, string>): PodRef {
  const value = (key: keyof typeof POD_INFO, pattern: RegExp) => {
    const v = context[POD_INFO[key]];
    if (v === undefined) {
      throw invalid(`volume_context lacks ${POD_INFO[key]}: the CSIDriver object needs podInfoOnMount: true`);
    }
    if (!pattern.test(v)) throw invalid(`volume_context ${POD_INFO[key]} ${JSON.stringify(v)} is malformed`);
    return v;
  };
  return {
    namespace: value("namespace", DNS_LABEL),
    name: value("name", DNS_SUBDOMAIN),
    uid: value("uid", POD_UID),
    serviceAccount: value("serviceAccount", DNS_SUBDOMAIN),
  };
}

/** The map names of `bpfd.io/maps`: comma-separated, each once, at most `max`. */
export function mapNamesOf(value: string | undefined, max: number): string[] {
  if (value === undefined) {
    throw invalid(`volume attribute ${MAPS_ATTRIBUTE} is required (map names, comma-separated)`);
  }
  const names = value.split(",").map((n) => n.trim());
  for (const n of names) {
    if (!MAP_NAME.test(n)) {
      throw invalid(
        `volume attribute ${MAPS_ATTRIBUTE}: ${JSON.stringify(n.slice(0, 80))} is not a map name`,
      );
    }
  }
  if (new Set(names).size !== names.length) {
    throw invalid(`volume attribute ${MAPS_ATTRIBUTE} names a map twice`);
  }
  if (names.length > max) {
    throw invalid(`volume attribute ${MAPS_ATTRIBUTE} names ${names.length} maps: at most ${max} per volume`);
  }
  return names;
}

/** Checks a NodePublishVolume request; throws `invalid_argument` naming the field. */
export function publishRequest(raw: RawPublishRequest, limits: RequestLimits): PublishRequest {
  const volumeId = volumeIdOf(raw);
  if (raw.volumeCapability?.block) {
    throw invalid("volume_capability: block access is not supported (mount only)");
  }
  const context = raw.volumeContext ?? {};
  const pod = podOf(context);
  for (const key of Object.keys(context)) {
    if (!KUBELET_KEYS.has(key) && key !== CONFIG_ATTRIBUTE && key !== MAPS_ATTRIBUTE) {
      throw invalid(
        `volume attribute ${
          JSON.stringify(key.slice(0, 80))
        } is unknown (${CONFIG_ATTRIBUTE}, ${MAPS_ATTRIBUTE})`,
      );
    }
  }
  const config = context[CONFIG_ATTRIBUTE];
  if (config === undefined) {
    throw invalid(`volume attribute ${CONFIG_ATTRIBUTE} is required (a BpfProgramConfig)`);
  }
  if (!DNS_SUBDOMAIN.test(config)) {
    throw invalid(
      `volume attribute ${CONFIG_ATTRIBUTE} ${JSON.stringify(config.slice(0, 80))} is not a name`,
    );
  }
  return {
    volumeId,
    targetPath: targetPathOf(raw, limits.kubeletDir, pod.uid),
    pod,
    config,
    maps: mapNamesOf(context[MAPS_ATTRIBUTE], limits.maxMapsPerVolume),
    writable: !raw.readonly,
  };
}
