/**
 * An Event on this node's Node object for every trace session that starts or ends (who, what, until
 * when), written with the runtime's own Kubernetes credentials when it has them (`auth.mode: kubernetes`).
 * A standalone runtime says once, in its log, that it records sessions in its log only.
 *
 * @example
 * ```ts
 * const announce = nodeEvents(config, log);
 * ```
 * @module
 */
import type { Logger } from "../lib/log.ts";
import type { TraceSessionInfo } from "../model/trace.ts";
import type { RuntimeConfig } from "./config.ts";
import { nodeNameOf } from "./auth/serving_cert.ts";
import { KubeFetch } from "./kube_fetch.ts";

/** What announces a session (TraceSessionsOptions.announce). */
export type Announce = (info: TraceSessionInfo, what: string) => Promise<void>;

/** The announcer for this runtime: Node Events in a cluster, none standalone (logged once). */
export function nodeEvents(config: RuntimeConfig, log: Logger): Announce | undefined {
  if (config.auth?.mode !== "kubernetes") {
    log.info(
      "standalone: trace sessions are recorded in this log only (no Node Events without Kubernetes auth)",
    );
    return undefined;
  }
  const nodeName = nodeNameOf(config);
  let kube: Promise<KubeFetch> | undefined;
  return async (info, what) => {
    kube ??= KubeFetch.load(config.auth?.kubeconfig);
    const now = new Date().toISOString();
    await (await kube).request("POST", "/api/v1/namespaces/default/events", {
      apiVersion: "v1",
      kind: "Event",
      metadata: { generateName: `${nodeName}.bpfd-trace.` },
      involvedObject: { apiVersion: "v1", kind: "Node", name: nodeName },
      reason: what.startsWith("started") ? "TraceSessionStarted" : "TraceSessionEnded",
      message: `bpftrace session ${info.id} of ${info.startedBy.user} ${what}, expires ${info.expiresAt}: ` +
        info.script.slice(0, 512),
      type: "Normal",
      source: { component: "bpfd-node", host: nodeName },
      reportingComponent: "bpfd.io/node",
      reportingInstance: nodeName,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    });
  };
}
