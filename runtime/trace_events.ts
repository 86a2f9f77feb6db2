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
import { kubeClient } from "../lib/kube_client.ts";
import type { Logger } from "../lib/log.ts";
import type { TraceSessionInfo } from "../model/trace.ts";
import type { RuntimeConfig } from "./config.ts";
import { nodeNameOf } from "./auth/serving_cert.ts";

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
  let core: Promise<import("@kubernetes/client-node").CoreV1Api> | undefined;
  return async (info, what) => {
    core ??= kubeClient().then((k8s) => {
      const kc = new k8s.KubeConfig();
      if (config.auth?.kubeconfig) kc.loadFromFile(config.auth.kubeconfig);
      else kc.loadFromDefault();
      return kc.makeApiClient(k8s.CoreV1Api);
    });
    const now = new Date();
    await (await core).createNamespacedEvent({
      namespace: "default",
      body: {
        metadata: { generateName: `${nodeName}.bpfd-trace.` },
        involvedObject: { apiVersion: "v1", kind: "Node", name: nodeName },
        reason: what.startsWith("started") ? "TraceSessionStarted" : "TraceSessionEnded",
        message:
          `bpftrace session ${info.id} of ${info.startedBy.user} ${what}, expires ${info.expiresAt}: ` +
          info.script.slice(0, 512),
        type: "Normal",
        source: { component: "bpfd-node", host: nodeName },
        reportingComponent: "bpfd.io/node",
        reportingInstance: nodeName,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  };
}
