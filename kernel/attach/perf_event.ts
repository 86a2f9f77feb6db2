/**
 * Sampling perf events (`perf_event` programs, e.g. a CPU profiler): a CPU-clock, task-clock or cycles
 * event on one CPU, sampling at a frequency or a period, linked to the program. One attachment samples
 * one CPU; a profiler of the whole machine attaches once per CPU.
 *
 * @example
 * ```ts
 * const linkFd = await perfEvent.attach(progFd, { type: "perf_event", event: "cpu-clock", frequency: 49, cpu: 0 });
 * ```
 * @module
 */
import {
  PERF_COUNT_HW_CPU_CYCLES,
  PERF_COUNT_SW_CPU_CLOCK,
  PERF_COUNT_SW_TASK_CLOCK,
  PERF_TYPE_HARDWARE,
  PERF_TYPE_SOFTWARE,
} from "../../ffi/abi.ts";
import type { AttachSpec } from "../../model/schemas.ts";
import { pinnedLink, type PlainKind } from "./kind.ts";
import { perfLink } from "./perf.ts";

type PerfEventAttach = Extract<AttachSpec, { type: "perf_event" }>;

/** The perf event type and config of each event name. */
const EVENTS: Record<PerfEventAttach["event"], { type: number; config: bigint }> = {
  "cpu-clock": { type: PERF_TYPE_SOFTWARE, config: BigInt(PERF_COUNT_SW_CPU_CLOCK) },
  "task-clock": { type: PERF_TYPE_SOFTWARE, config: BigInt(PERF_COUNT_SW_TASK_CLOCK) },
  "cpu-cycles": { type: PERF_TYPE_HARDWARE, config: BigInt(PERF_COUNT_HW_CPU_CYCLES) },
};

/** The default sampling frequency (Hz): off the timer tick, as profilers choose. */
const DEFAULT_FREQUENCY = 49n;

/** Sampling perf events, as an attach kind. */
export const perfEvent: PlainKind<PerfEventAttach> = {
  ...pinnedLink,
  attach(progFd, spec) {
    const sampling = spec.period !== undefined
      ? { samplePeriod: BigInt(spec.period), freq: false }
      : { samplePeriod: BigInt(spec.frequency ?? DEFAULT_FREQUENCY), freq: true };
    const event = { ...EVENTS[spec.event], ...sampling };
    return Promise.resolve(
      perfLink(progFd, event, { what: `attach perf_event ${spec.event}`, cpu: spec.cpu }),
    );
  },
};
