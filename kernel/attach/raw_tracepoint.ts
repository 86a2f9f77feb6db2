/**
 * Raw tracepoints (`raw_tracepoint/sys_enter`): the program gets the tracepoint's raw arguments, with no
 * tracefs and no perf event; attaching opens a BPF link on the tracepoint by name.
 *
 * @example
 * ```ts
 * const linkFd = await rawTracepoint.attach(progFd, { type: "raw_tracepoint", tracepoint: "sys_enter" });
 * ```
 * @module
 */
import { hasErrno } from "../../ffi/errno.ts";
import * as bpf from "../../ffi/libbpf.ts";
import type { AttachSpec } from "../../model/schemas.ts";
import { notFound, refused } from "../errors.ts";
import { pinnedLink, type PlainKind } from "./kind.ts";

type RawTracepointAttach = Extract<AttachSpec, { type: "raw_tracepoint" }>;

/** Raw tracepoints, as an attach kind. */
export const rawTracepoint: PlainKind<RawTracepointAttach> = {
  ...pinnedLink,
  attach(progFd, spec) {
    const what = `attach raw tracepoint ${spec.tracepoint}`;
    try {
      return Promise.resolve(bpf.rawTracepointOpen(what, spec.tracepoint, progFd));
    } catch (err) {
      if (hasErrno(err, "ENOENT")) throw notFound("tracepoint", spec.tracepoint);
      throw refused(err, what);
    }
  },
};
