/**
 * kprobes and kretprobes on a kernel function (at an offset into it), through the kprobe PMU.
 *
 * @example
 * ```ts
 * const linkFd = await kprobe.attach(progFd, { type: "kprobe", fnName: "do_sys_openat2", offset: 0 });
 * ```
 * @module
 */
import type { AttachSpec } from "../../model/schemas.ts";
import { pinnedLink, type PlainKind } from "./kind.ts";
import { perfLink, probePmu } from "./perf.ts";

type KprobeAttach = Extract<AttachSpec, { type: "kprobe" | "kretprobe" }>;

/** kprobes and kretprobes, as an attach kind. */
export const kprobe: PlainKind<KprobeAttach> = {
  ...pinnedLink,
  async attach(progFd, spec) {
    const pmu = await probePmu("kprobe", spec.type === "kretprobe");
    const event = { type: pmu.type, config: pmu.config, probe: spec.fnName, offset: BigInt(spec.offset) };
    return perfLink(progFd, event, { what: `attach ${spec.type} to ${spec.fnName}` });
  },
};
