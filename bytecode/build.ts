/**
 * Builds bytecode/: every `*.bpf.c` into `build/<name>.bpf.o` with clang (BPF target, BTF), and every
 * `fixtures/*.c` (user-space test helpers) into `build/<name>` with gcc. A target newer than its source
 * and the shared headers is left alone, so a second run costs milliseconds.
 *
 * @example
 * ```sh
 * deno task bytecode
 * ```
 * @module
 */

const root = new URL(".", import.meta.url).pathname;
const out = `${root}build`;

async function mtime(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).mtime?.getTime() ?? 0;
  } catch {
    return -1;
  }
}

async function newestHeader(): Promise<number> {
  let newest = await mtime(new URL(import.meta.url).pathname);
  for await (const entry of Deno.readDir(root)) {
    if (entry.name.endsWith(".h")) newest = Math.max(newest, await mtime(`${root}${entry.name}`));
  }
  return newest;
}

async function run(cmd: string, args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command(cmd, { args, stderr: "piped" }).output();
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed:\n${new TextDecoder().decode(stderr)}`);
}

async function build(): Promise<number> {
  await Deno.mkdir(out, { recursive: true });
  const headers = await newestHeader();
  const jobs: Promise<void>[] = [];
  const plan: Array<{ src: string; dst: string; cmd: string; args: string[] }> = [];
  for await (const entry of Deno.readDir(root)) {
    if (!entry.name.endsWith(".bpf.c")) continue;
    const src = `${root}${entry.name}`, dst = `${out}/${entry.name.replace(/\.c$/, ".o")}`;
    plan.push({
      src,
      dst,
      cmd: "clang",
      args: ["-O2", "-g", "-Wall", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", src, "-o", dst],
    });
  }
  for await (const entry of Deno.readDir(`${root}fixtures`)) {
    if (!entry.name.endsWith(".c")) continue;
    const src = `${root}fixtures/${entry.name}`, dst = `${out}/${entry.name.replace(/\.c$/, "")}`;
    plan.push({ src, dst, cmd: "gcc", args: ["-O1", "-g", "-o", dst, src] });
  }
  for (const step of plan) {
    const target = await mtime(step.dst);
    if (target >= Math.max(await mtime(step.src), headers)) continue;
    jobs.push(run(step.cmd, step.args));
  }
  await Promise.all(jobs);
  return jobs.length;
}

if (import.meta.main) {
  const built = await build();
  if (built > 0) console.error(`bytecode: built ${built} file(s) into ${out}`);
}
