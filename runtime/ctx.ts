/**
 * Builds one node: takes the state directory's lock, mounts bpffs if needed, opens the state, runs
 * recovery, and hands out a `ctx` per caller. The HTTP server, `deno task invoke` and tests all use it.
 *
 * @example
 * ```ts
 * const node = await createNode(await loadConfig(undefined, {}));
 * const ctx = node.ctxFor({ user: "uid:0", via: "in-process" });
 * ```
 * @module
 */
import type { Ctx, ImagePuller, PolicyGate, Traces } from "../functions/mod.ts";
import type { Identity } from "../model/schemas.ts";
import { closeFd } from "../ffi/libc.ts";
import { programIds } from "../ffi/libbpf.ts";
import type { RuntimeConfig } from "./config.ts";
import { NodeKernel } from "../kernel/kernel.ts";
import { KeyedLocks } from "./locks.ts";
import { Logger } from "../lib/log.ts";
import { ensureBpffs } from "../kernel/mounts.ts";
import { type Finding, recover } from "./recover.ts";
import { lockStateDir, StateStore } from "./state.ts";

/** A running node: everything a ctx is made of. */
export interface Node {
  config: RuntimeConfig;
  kernel: NodeKernel;
  state: StateStore;
  locks: KeyedLocks;
  log: Logger;
  images?: ImagePuller;
  /** Trace sessions (bpftrace children). */
  traces: NodeTraces;
  /** The BpfPolicy every ctx enforces (runtime/policy.ts); undefined: none. */
  policy?: PolicyGate;
  /** What start-up recovery found. */
  findings: Finding[];
  /** A ctx for one caller. */
  ctxFor(caller: Identity): Ctx;
  /** Why this node cannot load programs now (bpffs gone, bpf() refused), or undefined when it can. */
  readiness(): string | undefined;
  /** Releases the state lock; programs, maps and links stay in the kernel. */
  close(): void;
}

/** The numeric id of a group from /etc/group, or undefined when there is no such group. */
export async function groupId(name: string): Promise<number | undefined> {
  const line = (await Deno.readTextFile("/etc/group")).split("\n").find((l) => l.startsWith(`${name}:`));
  return line ? Number(line.split(":")[2]) : undefined;
}

/** Starts a node on `config`. Fails if another runtime holds the state directory. */
export async function createNode(config: RuntimeConfig, images?: ImagePuller): Promise<Node> {
  const log = new Logger(config.logLevel);
  await Deno.mkdir(config.stateDir, { recursive: true, mode: 0o750 });
  const lockFd = lockStateDir(config.stateDir);
  if (lockFd === null) {
    throw new Error(
      `another bpfd runtime is using ${config.stateDir} (talk to it with the CLI, or choose --state-dir)`,
    );
  }
  try {
    if (await ensureBpffs(config.bpffs)) log.info("mounted bpffs", { path: config.bpffs });
    const kernel = new NodeKernel(config.bpffs, await groupId(config.group));
    await kernel.prepare();
    const state = await StateStore.open(config.stateDir);
    const locks = new KeyedLocks();
    const findings = await recover({ kernel, state, log });
    const traces = lazyTraceSessions(config, log);
    findings.push(...await traces.recover());
    const node: Node = {
      config,
      kernel,
      state,
      locks,
      log,
      images,
      traces,
      findings,
      ctxFor: (caller) => ({ kernel, state, locks, images, traces, caller, log, policy: node.policy }),
      readiness: () => {
        try {
          if (!Deno.statSync(kernel.progDir).isDirectory) return `${kernel.progDir} is not a directory`;
          programIds();
          return undefined;
        } catch (err) {
          return (err as Error).message;
        }
      },
      close: () => {
        traces.killAll();
        closeFd(lockFd);
      },
    };
    return node;
  } catch (err) {
    closeFd(lockFd);
    throw err;
  }
}

/** The node's trace sessions, and what the runtime does with them at start and stop. */
export interface NodeTraces extends Traces {
  /** Ends what sessions of a previous runtime left (their records in the state directory). */
  recover(): Promise<Finding[]>;
  /** SIGKILLs every session's child. */
  killAll(): void;
}

/**
 * Trace sessions, imported on the first `trace` call or when a previous runtime left session records:
 * until then there is no session to list, stop or kill, and a runtime nobody traces on never holds
 * bpftrace's supervision in memory.
 */
export function lazyTraceSessions(config: RuntimeConfig, log: Logger): NodeTraces {
  const stateDir = config.stateDir;
  let sessions: Promise<import("./trace_sessions.ts").TraceSessions> | undefined;
  let loaded: import("./trace_sessions.ts").TraceSessions | undefined;
  const get = () =>
    sessions ??= Promise.all([import("./trace_sessions.ts"), import("./trace_events.ts")]).then(
      ([{ TraceSessions }, { nodeEvents }]) =>
        loaded = new TraceSessions({
          config: config.trace,
          stateDir,
          log,
          announce: nodeEvents(config, log),
        }),
    );
  const { defaultSeconds, maxSeconds, maxScriptBytes } = config.trace;
  return {
    bounds: { defaultSeconds, maxSeconds, maxScriptBytes },
    async start(request) {
      return await (await get()).start(request);
    },
    stop: (id, caller) => loaded?.stop(id, caller) ?? "not_found",
    sessions: () => loaded?.sessions() ?? [],
    async containerRoot(containerId) {
      return await (await get()).containerRoot(containerId);
    },
    async recover() {
      let recorded = false;
      try {
        recorded = !Deno.readDirSync(`${stateDir}/traces`).next().done;
      } catch { /* no sessions ever ran here */ }
      return recorded ? await (await get()).recover() : [];
    },
    killAll: () => loaded?.killAll(),
  };
}

/**
 * The image store, created on the first image pull: it brings the OCI client and sigstore, which a
 * node that only loads object files never needs in memory. Configuration errors surface at that pull.
 */
export function lazyImageStore(config: RuntimeConfig["images"]): ImagePuller {
  let store: Promise<Required<ImagePuller>> | undefined;
  const get = () => store ??= import("../image/store.ts").then((m) => m.createImageStore(config));
  return {
    async pull(source, opts) {
      return await (await get()).pull(source, opts);
    },
    async resolve(source, opts) {
      return await (await get()).resolve(source, opts);
    },
  };
}
