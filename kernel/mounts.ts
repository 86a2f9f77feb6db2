/**
 * Makes sure the file systems bpfd needs are mounted: a bpffs for its pins and tracefs for tracepoints.
 *
 * @module
 */

/** The mount points and file-system types in this mount namespace. */
export async function mounts(): Promise<Map<string, string>> {
  const table = await Deno.readTextFile("/proc/self/mountinfo");
  const found = new Map<string, string>();
  for (const line of table.split("\n")) {
    const fields = line.split(" ");
    const sep = fields.indexOf("-");
    if (sep < 0) continue;
    found.set(fields[4].replace(/\\040/g, " "), fields[sep + 1]);
  }
  return found;
}

async function mount(type: string, path: string): Promise<void> {
  const found = await Deno.lstat(path).catch(() => undefined);
  if (found && !found.isDirectory) throw new Error(`${path} exists and is not a directory`);
  await Deno.mkdir(path, { recursive: true });
  const { code, stderr } = await new Deno.Command("mount", {
    args: ["-t", type, type === "bpf" ? "bpffs" : "nodev", path],
    stderr: "piped",
  })
    .output();
  if (code !== 0) throw new Error(`mount -t ${type} ${path}: ${new TextDecoder().decode(stderr).trim()}`);
}

/** Mounts a bpffs at `path` unless one is there; returns whether it mounted one. Throws naming the path. */
export async function ensureBpffs(path: string): Promise<boolean> {
  if ((await mounts()).get(path) === "bpf") return false;
  try {
    await mount("bpf", path);
  } catch (err) {
    throw new Error(`cannot mount bpffs at ${path}: ${(err as Error).message}`);
  }
  return true;
}

/** Where tracefs is mounted, mounting it at /sys/kernel/tracing when it is nowhere. */
export async function ensureTracefs(): Promise<string> {
  for (const [path, type] of await mounts()) {
    if (type === "tracefs") return path;
  }
  const path = "/sys/kernel/tracing";
  await mount("tracefs", path);
  return path;
}
