/**
 * fentry and fexit (trampoline) programs: the target function was given at load, so attaching only
 * opens the link. Some kernels refuse trampolines outright (EPERM before verification).
 *
 * @example
 * ```ts
 * const linkFd = await tracing.attach(progFd, { type: "fentry" });
 * ```
 * @module
 */
import { hasErrno } from "../../ffi/errno.ts";
import * as bpf from "../../ffi/libbpf.ts";
import type { AttachSpec } from "../../model/schemas.ts";
import { refused } from "../errors.ts";
import { pinnedLink, type PlainKind } from "./kind.ts";

type TracingAttach = Extract<AttachSpec, { type: "fentry" | "fexit" }>;

/** fentry and fexit, as an attach kind. */
export const tracing: PlainKind<TracingAttach> = {
  ...pinnedLink,
  attach(progFd, spec) {
    try {
      return Promise.resolve(bpf.tracingAttach(`attach ${spec.type}`, progFd));
    } catch (err) {
      const hint = hasErrno(err, "EPERM") ? "this kernel does not allow trampoline programs" : undefined;
      throw refused(err, `attach ${spec.type}`, hint);
    }
  },
};
