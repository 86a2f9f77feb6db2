/**
 * Files a request names, opened for its caller (kernel/files.ts): a 404 naming the field for a file that is
 * missing or that a local caller could not read itself (the same answer for both), a 400 for a bad path,
 * a FIFO or device, or a file over the size limit.
 *
 * @example
 * ```ts
 * using file = openForCaller(ctx, { path, field: "bytecode.path", what: "file", maxBytes: MAX_OBJECT_BYTES });
 * ```
 * @module
 */
import { openUserFile, type UserFile, UserFileError } from "../kernel/files.ts";
import type { Ctx } from "./_ctx.ts";
import { invalid, notFound } from "./_errors.ts";

/** Opens `path` as kernel/files.ts does, checked against the caller's own read access when it is local. */
export function openForCaller(
  ctx: Ctx,
  opts: { path: string; field: string; what: string; maxBytes: number },
): UserFile {
  const { uid, gid, gids: groups } = ctx.caller;
  try {
    return openUserFile(opts.path, {
      maxBytes: opts.maxBytes,
      reader: uid !== undefined && gid !== undefined ? { uid, gid, groups } : undefined,
    });
  } catch (err) {
    if (!(err instanceof UserFileError)) throw err;
    if (err.kind === "not_found") throw notFound(opts.what, opts.path, { field: opts.field });
    throw invalid(opts.field, err.message);
  }
}
