/**
 * The CSI node plugin's gRPC side (`@grpc/grpc-js`, protos in csi/protos/): the kubelet's plugin
 * registration service on `plugins_registry/<driver>-reg.sock` (node-driver-registrar's protocol, served
 * here), and CSI Identity + Node on `plugins/<driver>/csi.sock`. Both sockets are root's alone (0600): only
 * the kubelet calls them. Every publish and unpublish is logged with the pod, its ServiceAccount, the
 * config, the maps and the access; every refusal with its gRPC status.
 *
 * @example
 * ```ts
 * const plugin = await serveCsi({ config, volumes, access, log });
 * await plugin.stop();
 * ```
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";
import type { Logger } from "../lib/log.ts";
import { type AccessDeps, grantFor } from "./access.ts";
import { type CsiConfig, csiSockets } from "./config.ts";
import { type CsiCode, CsiError } from "./errors.ts";
import { relayUnix } from "./authority_proxy.ts";
import { publishRequest, type RawPublishRequest, targetPathOf, volumeIdOf } from "./request.ts";
import type { MapVolumes } from "./volumes.ts";

/** What the plugin serves with. */
export interface CsiServerDeps {
  config: CsiConfig;
  volumes: MapVolumes;
  access: AccessDeps;
  log: Logger;
}

/** A serving plugin. */
export interface CsiPlugin {
  stop(): Promise<void>;
}

const STATUS: Record<CsiCode, grpc.status> = {
  invalid_argument: grpc.status.INVALID_ARGUMENT,
  not_found: grpc.status.NOT_FOUND,
  already_exists: grpc.status.ALREADY_EXISTS,
  permission_denied: grpc.status.PERMISSION_DENIED,
  resource_exhausted: grpc.status.RESOURCE_EXHAUSTED,
  failed_precondition: grpc.status.FAILED_PRECONDITION,
  unavailable: grpc.status.UNAVAILABLE,
  internal: grpc.status.INTERNAL,
};

const PROTO_OPTIONS = { longs: String, enums: String, defaults: true, oneofs: true };

// deno-lint-ignore no-explicit-any
type Package = any;

function protos(): { csi: Package; registration: Package } {
  const load = (file: string): Package =>
    grpc.loadPackageDefinition(
      loader.loadSync(new URL(`./protos/${file}`, import.meta.url).pathname, PROTO_OPTIONS),
    );
  return { csi: load("csi.proto").csi.v1, registration: load("registration.proto").pluginregistration };
}

/** A unary handler from an async function; a CsiError answers with its status, anything else INTERNAL. */
function unary<Req, Res>(fn: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call.request).then(
      (res) => callback(null, res),
      (err) => {
        const code = err instanceof CsiError ? STATUS[err.code] : grpc.status.INTERNAL;
        callback({ code, details: err instanceof Error ? err.message : String(err) });
      },
    );
  };
}

async function listen(server: grpc.Server, path: string): Promise<void> {
  await Deno.remove(path).catch(() => {/* no stale socket */});
  await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `unix:${path}`,
      grpc.ServerCredentials.createInsecure(),
      (e, port) => e ? reject(e) : resolve(port),
    )
  );
  await Deno.chmod(path, 0o600);
}

/** Serves registration, Identity and Node until stopped. */
export async function serveCsi(deps: CsiServerDeps): Promise<CsiPlugin> {
  const { config, access, log } = deps;
  const sockets = csiSockets(config);
  const { csi, registration } = protos();

  const plugin = new grpc.Server();
  plugin.addService(csi.Identity.service, {
    GetPluginInfo: unary(() => Promise.resolve({ name: config.driverName, vendorVersion: "0.1.0" })),
    GetPluginCapabilities: unary(() => Promise.resolve({ capabilities: [] })),
    Probe: unary(() => Promise.resolve({ ready: { value: true } })),
  });
  plugin.addService(csi.Node.service, {
    NodePublishVolume: unary((raw: RawPublishRequest) => publishVolume(raw, deps)),
    NodeUnpublishVolume: unary((raw: { volumeId?: string; targetPath?: string }) =>
      unpublishVolume(raw, deps)
    ),
    NodeGetCapabilities: unary(() => Promise.resolve({ capabilities: [] })),
    NodeGetInfo: unary(() => Promise.resolve({ nodeId: access.nodeName, maxVolumesPerNode: "0" })),
  });

  plugin.addService(registration.Registration.service, {
    GetInfo: unary(() =>
      Promise.resolve({
        type: "CSIPlugin",
        name: config.driverName,
        endpoint: sockets.endpoint,
        supportedVersions: ["1.0.0"],
      })
    ),
    NotifyRegistrationStatus: unary((s: { pluginRegistered?: boolean; error?: string }) => {
      const fields = { driver: config.driverName, error: s.error || undefined };
      if (s.pluginRegistered) log.info("csi: registered with the kubelet", fields);
      else log.error("csi: the kubelet refused the registration", fields);
      return Promise.resolve({});
    }),
  });

  // gRPC on a socket of its own; the kubelet dials relays (csi/authority_proxy.ts) on the two sockets.
  const dir = sockets.endpoint.slice(0, sockets.endpoint.lastIndexOf("/"));
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await Deno.chmod(dir, 0o700);
  const grpcSocket = `${dir}/grpc.sock`;
  await listen(plugin, grpcSocket);
  const relays = [await relayUnix(sockets.endpoint, grpcSocket)];
  // Registration last: once the kubelet sees this socket it calls the endpoint.
  relays.push(await relayUnix(sockets.registration, grpcSocket));
  log.info("csi: serving", {
    driver: config.driverName,
    endpoint: sockets.endpoint,
    registration: sockets.registration,
  });
  return {
    async stop() {
      for (const r of relays.reverse()) r.close();
      await new Promise<void>((r) => plugin.tryShutdown(() => r()));
      // The plugin's directory goes too once empty: nothing of the driver stays in the kubelet's.
      for (const path of [sockets.registration, sockets.endpoint, grpcSocket, dir]) {
        await Deno.remove(path).catch(() => {/* gone, or not empty */});
      }
    },
  };
}

/** NodePublishVolume: check, authorize, mount; logged either way. */
async function publishVolume(raw: RawPublishRequest, deps: CsiServerDeps): Promise<Record<string, never>> {
  const { config, volumes, access, log } = deps;
  const context = raw.volumeContext ?? {};
  const who = {
    volumeId: raw.volumeId,
    pod: `${context["csi.storage.k8s.io/pod.namespace"]}/${context["csi.storage.k8s.io/pod.name"]}`,
    serviceAccount: context["csi.storage.k8s.io/serviceAccount.name"],
    config: context["bpfd.io/config"],
    maps: context["bpfd.io/maps"],
    access: raw.readonly ? "read" : "write",
  };
  const started = performance.now();
  try {
    const req = publishRequest(raw, config);
    await volumes.publish(req, () => grantFor(req, access));
    log.info("csi: map volume published", { ...who, ms: Math.round(performance.now() - started) });
    return {};
  } catch (err) {
    const code = err instanceof CsiError ? err.code : "internal";
    log.warn("csi: map volume refused", {
      ...who,
      code,
      error: err instanceof Error ? err.message : String(err),
    });
    throw err;
  }
}

/** NodeUnpublishVolume: unmount and forget, whether or not it was recorded. */
async function unpublishVolume(
  raw: { volumeId?: string; targetPath?: string },
  deps: CsiServerDeps,
): Promise<Record<string, never>> {
  const volumeId = volumeIdOf(raw);
  const target = targetPathOf(raw, deps.config.kubeletDir);
  const r = await deps.volumes.unpublish(volumeId, target);
  deps.log.info("csi: map volume unpublished", {
    volumeId,
    pod: r ? `${r.pod.namespace}/${r.pod.name}` : undefined,
    serviceAccount: r?.pod.serviceAccount,
    config: r?.config,
  });
  return {};
}
