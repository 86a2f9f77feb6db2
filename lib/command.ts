/**
 * Running a command to its end and collecting its output: `run` never throws for a non-zero exit, `must`
 * throws with the command's stderr.
 *
 * @example
 * ```ts
 * const { code, stdout } = await run("ip", ["-n", "bpfd-node", "link", "show", "eth0"]);
 * ```
 * @module
 */

/** A finished command: its exit code and output. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; never throws for a non-zero exit. */
export async function run(cmd: string, args: string[], stdin?: string): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/** Runs a command and throws with its stderr when it fails. */
export async function must(cmd: string, args: string[], stdin?: string): Promise<string> {
  const r = await run(cmd, args, stdin);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}
