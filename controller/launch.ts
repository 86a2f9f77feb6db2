/**
 * How the controller process is started: `deno task controller`, the Deployment and the tests run `deno`
 * with {@link CONTROLLER_DENO_ARGS} then `controller/main.ts` (a test checks the texts that cannot import
 * this module).
 *
 * @example
 * ```ts
 * new Deno.Command(Deno.execPath(), { args: [...CONTROLLER_DENO_ARGS, "controller/main.ts", "--help"] });
 * ```
 * @module
 */

/**
 * V8 flags for the controller, measured by `deno task bench scale` (BENCHMARKS.md): its live heap is
 * small (about 50 MiB with 1,000 nodes) but V8 sizes the heap for throughput; a 1 MiB young generation
 * and `--optimize-for-size` keep the resident set near the live set (about 160 MiB instead of 350 MiB
 * at 1,000 nodes) for a little more CPU.
 */
export const CONTROLLER_V8_FLAGS: readonly string[] = ["--max-semi-space-size=1", "--optimize-for-size"];

/** `deno` arguments up to the entry point. */
export const CONTROLLER_DENO_ARGS: readonly string[] = [
  "run",
  "-A",
  `--v8-flags=${CONTROLLER_V8_FLAGS.join(",")}`,
];
