/**
 * What the perf-event based kinds share (tracepoint, kprobe, uprobe): opening the perf event, the
 * dynamic PMU of kprobes and uprobes, and the BPF link that ties the program to the event.
 *
 * @example
 * ```ts
 * const pmu = await probePmu("kprobe", false);
 * const linkFd = perfLink(progFd, { type: pmu.type, config: pmu.config, probe: "do_sys_open" }, { what });
 * ```
 * @module
 */
import { BpfAttachType } from "../../ffi/abi.ts";
import { hasErrno } from "../../ffi/errno.ts";
import * as bpf from "../../ffi/libbpf.ts";
import { type PerfEvent, perfEventOpen } from "../../ffi/libc.ts";
import { KernelError, notFound, refused } from "../errors.ts";

/** Opens `event` (for process `pid`, or every process on `cpu`) and links program `progFd` to it. */
export function perfLink(
  progFd: number,
  event: PerfEvent,
  opts: { what: string; pid?: number; cpu?: number },
): number {
  const { what, pid = -1, cpu = 0 } = opts;
  let perfFd: number;
  try {
    perfFd = perfEventOpen(event, pid, cpu);
  } catch (err) {
    if (hasErrno(err, "ESRCH")) throw notFound("process", pid);
    if (hasErrno(err, "ENOENT", "EINVAL")) {
      throw refused(err, what, "the probe point does not exist or cannot be probed");
    }
    throw refused(err, what);
  }
  try {
    return bpf.linkCreate(what, progFd, perfFd, BpfAttachType.PERF_EVENT);
  } catch (err) {
    throw refused(err, what);
  } finally {
    bpf.closeFd(perfFd); // the link holds the perf event
  }
}

/** The dynamic PMU for kprobes or uprobes, and the config bit for a return probe. */
export async function probePmu(
  kind: "kprobe" | "uprobe",
  retprobe: boolean,
): Promise<{ type: number; config: bigint }> {
  const dir = `/sys/bus/event_source/devices/${kind}`;
  let type: number;
  try {
    type = Number(await Deno.readTextFile(`${dir}/type`));
  } catch {
    const option = kind === "kprobe" ? "CONFIG_KPROBES" : "CONFIG_UPROBES";
    throw new KernelError(
      "kernel_unsupported",
      kind,
      `this kernel has no ${kind} support (${option} is not set: ${dir} is absent)`,
      { errno: "ENOENT" },
    );
  }
  if (!retprobe) return { type, config: 0n };
  const format = await Deno.readTextFile(`${dir}/format/retprobe`); // "config:0"
  const bit = Number(format.trim().split(":")[1] ?? 0);
  return { type, config: 1n << BigInt(bit) };
}
