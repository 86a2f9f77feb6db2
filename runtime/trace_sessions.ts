/**
 * The node's trace sessions: each a bpftrace child with its limits, recorded in the state directory
 * (`traces/<id>.json`: pid and start time) while it runs, ended with SIGINT at its expiry or when its
 * caller goes away (SIGKILL after a grace period). At start, `recover` kills what a killed runtime left.
 *
 * @example
 * ```ts
 * const traces = new TraceSessions({ config: config.trace, stateDir: "/run/bpfd", log });
 * await traces.recover();
 * ```
 * @module
 */
import type { TraceRequest, Traces } from "../functions/mod.ts";
import { heldProgramIds, killIfSame, removeCgroups, spawnBpftrace, TraceError } from "../kernel/bpftrace.ts";
import { containerPid } from "../kernel/containers.ts";
import { ensureTracefs } from "../kernel/mounts.ts";
import { programIds } from "../ffi/libbpf.ts";
import type { Logger } from "../lib/log.ts";
import { PositiveInt, z } from "../model/zod.ts";
import { type TraceEndReason, type TraceEvent, TraceSessionInfo } from "../model/trace.ts";
import type { Identity } from "../model/schemas.ts";
import type { TraceConfig } from "./config.ts";
import type { Finding } from "./recover.ts";
import { OutputBudget } from "./trace_output.ts";
import { TraceRun } from "./trace_run.ts";

/** How long bpftrace may take to compile and attach before its output is streamed anyway. */
const STARTUP_MS = 30_000;

/** Options of {@link TraceSessions}. */
export interface TraceSessionsOptions {
  config: TraceConfig;
  stateDir: string;
  log: Logger;
  /** Told when a session starts and ends (an Event on the Node, in a cluster). */
  announce?: (info: TraceSessionInfo, what: string) => Promise<void>;
}

interface Running {
  info: TraceSessionInfo;
  stop(reason: TraceEndReason): void;
  kill(): void;
}

/** Runs and tracks trace sessions (the `Traces` functions see in their ctx). */
export class TraceSessions implements Traces {
  #running = new Map<string, Running>();
  #starting = 0;
  readonly dir: string;

  constructor(readonly opts: TraceSessionsOptions) {
    this.dir = `${opts.stateDir}/traces`;
  }

  get bounds(): Traces["bounds"] {
    const { defaultSeconds, maxSeconds, maxScriptBytes } = this.opts.config;
    return { defaultSeconds, maxSeconds, maxScriptBytes };
  }

  stop(id: string, caller: Identity): "stopping" | "not_found" | "not_yours" {
    const running = this.#running.get(id);
    if (!running) return "not_found";
    if (running.info.startedBy.user !== caller.user) return "not_yours";
    running.stop("stopped");
    return "stopping";
  }

  sessions(): Array<TraceSessionInfo & { programIds: number[] }> {
    return [...this.#running.values()].map(({ info }) => ({ ...info, programIds: heldProgramIds(info.pid) }));
  }

  async containerRoot(containerId: string): Promise<string | undefined> {
    const pid = await containerPid(containerId);
    return pid === undefined ? undefined : `/proc/${pid}/root`;
  }

  async start(req: TraceRequest): Promise<{ session: TraceSessionInfo; events: ReadableStream<TraceEvent> }> {
    const { config } = this.opts;
    if (this.#running.size + this.#starting >= config.maxSessions) {
      throw new TraceError(
        "too_many",
        `${config.maxSessions} trace sessions already run on this node (its maximum); try again later`,
      );
    }
    this.#starting++;
    try {
      await ensureTracefs();
      await Deno.mkdir(this.dir, { recursive: true, mode: 0o700 });
      const id = crypto.randomUUID().slice(0, 8);
      const child = await spawnBpftrace(req.script, {
        id,
        bpftrace: config.bpftrace,
        limits: {
          memoryBytes: config.memoryBytes,
          cpuPercent: config.cpuPercent,
          cpuSeconds: Math.ceil(req.seconds * config.cpuPercent / 100) + 30,
        },
      });
      let info: TraceSessionInfo | undefined;
      try {
        const now = Date.now();
        info = {
          id,
          startedBy: req.caller,
          startedAt: new Date(now).toISOString(),
          expiresAt: new Date(now + req.seconds * 1000).toISOString(),
          pid: child.pid,
          startTime: child.startTime,
          script: req.given,
          cgroups: child.cgroups,
        };
        await this.#record(info);
        const run = new TraceRun(
          child,
          new OutputBudget({
            bytesPerSecond: config.bytesPerSecond,
            totalBytes: config.maxOutputBytes,
            finalBytes: config.finalOutputBytes,
          }),
        );
        const startup = await run.startup(STARTUP_MS);
        if (!startup.running) {
          throw new TraceError(
            "refused",
            startup.message || `bpftrace exited with status ${startup.exitCode}`,
          );
        }
        await this.#record({ ...info, programIds: heldProgramIds(child.pid) });
        const running = this.#track(info, run);
        const events = run.stream(() => running.stop("disconnected"));
        return { session: info, events };
      } catch (err) {
        child.kill();
        await child.process.status;
        if (info) await this.#cleanup(info);
        else await removeCgroups(child.cgroups);
        throw err;
      }
    } finally {
      this.#starting--;
    }
  }

  /** Watches a started session until its child exits, and ends it at its expiry. */
  #track(info: TraceSessionInfo, run: TraceRun): Running {
    const { config, log } = this.opts;
    let reason: TraceEndReason | undefined;
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    let nudge: ReturnType<typeof setInterval> | undefined;
    const running: Running = {
      info,
      stop: (why) => {
        if (reason) return;
        reason = why;
        run.budget.final();
        run.child.interrupt();
        // bpftrace 0.17 can miss a SIGINT that lands before it waits for events: ask again until it ends.
        nudge = setInterval(() => run.child.interrupt(), 300);
        graceTimer = setTimeout(() => run.child.kill(), config.graceSeconds * 1000);
      },
      kill: () => run.child.kill(),
    };
    this.#running.set(info.id, running);
    const expiry = setTimeout(() => running.stop("expired"), Date.parse(info.expiresAt) - Date.now());
    this.#announce(info, "started");
    run.done.then(async (status) => {
      clearTimeout(expiry);
      clearTimeout(graceTimer);
      clearInterval(nudge);
      const ended = reason ?? (status.success ? "exited" : "failed");
      reason = ended; // a stop() from now on has nothing to do
      // Everything is gone (cgroups, record) before the session leaves the list and the caller hears of
      // the end: no running session means nothing of it is left.
      try {
        await this.#cleanup(info);
      } finally {
        this.#running.delete(info.id);
      }
      run.finish({
        end: { reason: ended, exitCode: status.code, truncatedBytes: run.budget.dropped || undefined },
      });
      log.info("trace session ended", {
        session: info.id,
        user: info.startedBy.user,
        reason: ended,
        exitCode: status.code,
      });
      this.#announce(info, `ended (${ended})`);
    });
    return running;
  }

  #announce(info: TraceSessionInfo, what: string): void {
    this.opts.announce?.(info, what).catch((err) =>
      this.opts.log.warn("trace session: no Node event", { session: info.id, error: (err as Error).message })
    );
  }

  async #record(info: z.input<typeof TraceRecord>): Promise<void> {
    const path = `${this.dir}/${info.id}.json`;
    await Deno.writeTextFile(`${path}.tmp`, JSON.stringify(info));
    await Deno.rename(`${path}.tmp`, path);
  }

  /** Removes the session's cgroups, then its record (kept while a cgroup remains, for the next start). */
  async #cleanup(info: TraceSessionInfo, waitMs?: number): Promise<string[]> {
    const left = await removeCgroups(info.cgroups, waitMs);
    if (left.length) this.opts.log.warn("trace session: cgroups not removed", { session: info.id, left });
    else await Deno.remove(`${this.dir}/${info.id}.json`).catch(() => {/* never recorded */});
    return left;
  }

  /** SIGKILLs every session's child (the runtime stops; recovery at the next start finishes up). */
  killAll(): void {
    for (const running of this.#running.values()) running.kill();
  }

  /** Ends what sessions of a previous runtime left: their processes, programs, cgroups and records. */
  async recover(): Promise<Finding[]> {
    const findings: Finding[] = [];
    let entries: Deno.DirEntry[] = [];
    try {
      entries = [...Deno.readDirSync(this.dir)];
    } catch { /* no sessions ever ran here */ }
    for (const entry of entries) {
      const path = `${this.dir}/${entry.name}`;
      if (!entry.name.endsWith(".json")) {
        await Deno.remove(path).catch(() => {/* gone meanwhile */});
        continue;
      }
      const parsed = TraceRecord.safeParse(parseJson(await Deno.readTextFile(path).catch(() => "")));
      if (!parsed.success) {
        await Deno.remove(path);
        findings.push({ what: "trace session", id: 0, action: `record ${entry.name} unreadable; removed` });
        continue;
      }
      const { programIds: recorded, ...info } = parsed.data;
      const killed = await killIfSame(info.pid, info.startTime);
      const left = await programsLeft(recorded);
      const cgroupsLeft = await this.#cleanup(info, 5000);
      findings.push({
        what: "trace session",
        id: info.pid,
        action:
          `${info.id} of ${info.startedBy.user}: ${killed ? "bpftrace killed" : "bpftrace had exited"}` +
          (left.length ? `; programs ${left.join(", ")} still loaded` : "; no program left") +
          (cgroupsLeft.length ? `; cgroups ${cgroupsLeft.join(", ")} not removable yet` : ""),
      });
    }
    for (const f of findings) this.opts.log.warn("recovery", { ...f });
    return findings;
  }
}

/** A session's record in the state directory: the session and the programs it held once started. */
const TraceRecord = z.extend(TraceSessionInfo, { programIds: z._default(z.array(PositiveInt), []) });

/** `text` parsed as JSON, or undefined when it is not JSON. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined; /* a torn or foreign file: the caller reports it */
  }
}

/** Which of `ids` are still in the kernel after up to two seconds (programs are freed asynchronously). */
async function programsLeft(ids: number[]): Promise<number[]> {
  let left = ids;
  for (const deadline = Date.now() + 2000; left.length && Date.now() < deadline;) {
    const alive = new Set(programIds());
    left = ids.filter((id) => alive.has(id));
    if (left.length) await new Promise((r) => setTimeout(r, 50));
  }
  return left;
}
