/**
 * Trace sessions (bpftrace on a node): what a session is as `list` shows it and the state directory
 * records it, and the lines of its output stream (newline-delimited JSON, one object per line).
 *
 * @example
 * ```ts
 * const event: TraceEvent = { line: "@[cat]: 3" };
 * ```
 * @module
 */
import { PositiveInt, z } from "./zod.ts";
import { Identity } from "./schemas.ts";

/** One trace session: who started it, when, until when, and the process running it. */
export const TraceSessionInfo = z.object({
  id: z.string(),
  startedBy: Identity,
  startedAt: z.string(),
  expiresAt: z.string(),
  /** bpftrace's pid and its start time (clock ticks since boot), which together name that process. */
  pid: PositiveInt,
  startTime: z.string(),
  /** The program text, as given (before uprobe paths were rewritten into a container's root). */
  script: z.string(),
  /** The cgroups the session runs in (removed when it ends). */
  cgroups: z._default(z.array(z.string()), []),
});
export type TraceSessionInfo = z.infer<typeof TraceSessionInfo>;

/** How a session ended. */
export const TraceEndReason = z.enum(["exited", "expired", "disconnected", "stopped", "failed"]);
export type TraceEndReason = z.infer<typeof TraceEndReason>;

/**
 * One line of a session's stream: first `session`, then `line`s (bpftrace's stdout and stderr, and
 * bpfd's own notices such as "output truncated"), last `end`.
 */
export type TraceEvent =
  | { session: Omit<TraceSessionInfo, "script" | "cgroups" | "startTime">; node?: string }
  | { line: string; stderr?: true }
  | { end: { reason: TraceEndReason; exitCode?: number; truncatedBytes?: number } };

/** The content type of a session's stream. */
export const TRACE_CONTENT_TYPE = "application/x-ndjson";

/** The text of bpfd's notice when output is dropped. */
export const TRUNCATED = "[bpfd: output truncated]";
