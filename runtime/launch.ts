/**
 * How the node runtime process is started: `deno task start`, scripts/start.sh, the DaemonSet and the
 * tests all run `deno` with {@link RUNTIME_DENO_ARGS} then `runtime/main.ts` (a test checks the texts
 * that cannot import this module).
 *
 * @example
 * ```ts
 * new Deno.Command(Deno.execPath(), { args: [...RUNTIME_DENO_ARGS, "runtime/main.ts", "--help"] });
 * ```
 * @module
 */

/**
 * V8 flags for the node runtime, each measured by `deno task bench node` (BENCHMARKS.md). A 1 MiB young
 * generation (`--max-semi-space-size=1`): requests allocate little, and the default semi-spaces keep about
 * 8 MiB more resident. V8's interpreter only (`--jitless`): the runtime's JavaScript is control-plane code,
 * a fraction of a millisecond around each call's kernel work (load + attach over HTTP stays well within
 * the bench's 1.3× of in-process FFI), and without the optimizing compilers neither their code nor
 * optimized code is resident: about 3 MiB. A heap that grows slowly (`--optimize-for-size`): each `list`
 * of 1,000 programs leaves a ~1 MB answer behind, and V8's default growth kept ~15 of them resident
 * (`deno task bench inventory`; no change with 100 programs).
 */
export const RUNTIME_V8_FLAGS: readonly string[] = [
  "--max-semi-space-size=1",
  "--jitless",
  "--optimize-for-size",
];

/**
 * `deno` arguments up to the entry point. `--no-code-cache`: V8's code cache only shortens start-up (by
 * about 10 ms here), and using it keeps about 2.5 MiB more resident.
 */
export const RUNTIME_DENO_ARGS: readonly string[] = [
  "run",
  "-A",
  "--no-code-cache",
  `--v8-flags=${RUNTIME_V8_FLAGS.join(",")}`,
];
