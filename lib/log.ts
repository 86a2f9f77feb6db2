/**
 * A small structured logger: one JSON object per line on stderr, so a node's log can be searched for a
 * caller, a program id or a hook.
 *
 * @module
 */

export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** The most one logged value takes, as JSON; a longer one is cut and marked. */
export const MAX_LOGGED_VALUE = 1024;

function boundValue(value: unknown): unknown {
  const json = typeof value === "string" ? value : JSON.stringify(value);
  if (json === undefined || json.length <= MAX_LOGGED_VALUE) return value;
  return `${json.slice(0, MAX_LOGGED_VALUE)}… [${json.length - MAX_LOGGED_VALUE} more characters]`;
}

/** Writes structured log lines at or above a level. */
export class Logger {
  constructor(readonly level: Level = "info", readonly fields: Record<string, unknown> = {}) {}

  /** A logger that adds `fields` to every line. */
  with(fields: Record<string, unknown>): Logger {
    return new Logger(this.level, { ...this.fields, ...fields });
  }

  log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
    if (ORDER[level] < ORDER[this.level]) return;
    const bounded = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, boundValue(v)]));
    console.error(JSON.stringify({ time: new Date().toISOString(), level, msg, ...this.fields, ...bounded }));
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.log("error", msg, fields);
  }
}
