/**
 * Classic tracepoints (`group/name`): a perf event on the tracepoint's id from tracefs (mounted when it
 * is nowhere), linked to the program.
 *
 * @example
 * ```ts
 * const linkFd = await tracepoint.attach(progFd, { type: "tracepoint", tracepoint: "syscalls/sys_enter_getppid" });
 * ```
 * @module
 */
import { PERF_TYPE_TRACEPOINT } from "../../ffi/abi.ts";
import type { AttachSpec } from "../../model/schemas.ts";
import { notFound } from "../errors.ts";
import { ensureTracefs } from "../mounts.ts";
import { pinnedLink, type PlainKind } from "./kind.ts";
import { perfLink } from "./perf.ts";

type TracepointAttach = Extract<AttachSpec, { type: "tracepoint" }>;

/** Tracepoints, as an attach kind. */
export const tracepoint: PlainKind<TracepointAttach> = {
  ...pinnedLink,
  async attach(progFd, spec) {
    const tracefs = await ensureTracefs();
    let id: number;
    try {
      id = Number(await Deno.readTextFile(`${tracefs}/events/${spec.tracepoint}/id`));
    } catch {
      throw notFound("tracepoint", spec.tracepoint);
    }
    const event = { type: PERF_TYPE_TRACEPOINT, config: BigInt(id) };
    return perfLink(progFd, event, { what: `attach tracepoint ${spec.tracepoint}` });
  },
};
