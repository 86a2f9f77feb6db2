/**
 * BTF-typed raw tracepoints (`tp_btf/sched_switch`): the target was resolved in the kernel's BTF at load,
 * so attaching only opens the link. Unlike fentry/fexit they need no trampoline.
 *
 * @example
 * ```ts
 * const linkFd = await tpBtf.attach(progFd, { type: "tp_btf" });
 * ```
 * @module
 */
import * as bpf from "../../ffi/libbpf.ts";
import type { AttachSpec } from "../../model/schemas.ts";
import { refused } from "../errors.ts";
import { pinnedLink, type PlainKind } from "./kind.ts";

type TpBtfAttach = Extract<AttachSpec, { type: "tp_btf" }>;

/** tp_btf, as an attach kind. */
export const tpBtf: PlainKind<TpBtfAttach> = {
  ...pinnedLink,
  attach(progFd) {
    try {
      return Promise.resolve(bpf.tracingAttach("attach tp_btf", progFd));
    } catch (err) {
      throw refused(err, "attach tp_btf");
    }
  },
};
