/**
 * bpftrace as a child process: started inside its own memory and CPU cgroups (v1, when they can be made),
 * under an address-space and CPU-time rlimit, `nice`d, killed by the kernel if its parent dies; its BPF
 * programs found through its file descriptors; ended with SIGINT (bpftrace then prints its maps).
 *
 * @example
 * ```ts
 * const child = await spawnBpftrace("tracepoint:syscalls:sys_enter_openat { @ = count(); }", { id: "t1" });
 * child.interrupt();
 * ```
 * @module
 */

/** What a bpftrace child may use. */
export interface BpftraceLimits {
  /** Memory of the child (cgroup memory.limit_in_bytes; RLIMIT_AS gets four times as much). */
  memoryBytes: number;
  /** CPU share of the child, percent of one CPU (cgroup cpu.cfs_quota_us). */
  cpuPercent: number;
  /** CPU seconds the child may use in all (RLIMIT_CPU: SIGXCPU, then SIGKILL). */
  cpuSeconds: number;
}

/** Options of {@link spawnBpftrace}. */
export interface SpawnOptions {
  /** Names the session's cgroups (`bpfd-trace-<id>`). */
  id: string;
  /** The bpftrace executable (default `bpftrace` on PATH). */
  bpftrace?: string;
  limits?: BpftraceLimits;
}

/** A running bpftrace. */
export interface BpftraceChild {
  pid: number;
  /** The process's start time (clock ticks since boot): with the pid, it names this process only. */
  startTime: string;
  /** The cgroups it was put into (removed by {@link removeCgroups}). */
  cgroups: string[];
  process: Deno.ChildProcess;
  /** SIGINT: bpftrace detaches, prints its maps and exits. */
  interrupt(): void;
  /** SIGKILL. */
  kill(): void;
}

/** The default limits: 256 MiB, half a CPU, 10 minutes of CPU time. */
export const DEFAULT_LIMITS: BpftraceLimits = { memoryBytes: 256 << 20, cpuPercent: 50, cpuSeconds: 600 };

const CGROUP_ROOT = "/sys/fs/cgroup";

/** Makes the session's memory and cpu cgroups (v1); those the kernel or the mounts refuse are skipped. */
async function makeCgroups(id: string, limits: BpftraceLimits): Promise<string[]> {
  const made: string[] = [];
  const settings: Array<[string, Record<string, string>]> = [
    ["memory", { "memory.limit_in_bytes": String(limits.memoryBytes) }],
    ["cpu", { "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": String(limits.cpuPercent * 1000) }],
  ];
  for (const [controller, files] of settings) {
    const dir = `${CGROUP_ROOT}/${controller}/bpfd-trace-${id}`;
    try {
      await Deno.mkdir(dir);
      made.push(dir);
      for (const [file, value] of Object.entries(files)) await Deno.writeTextFile(`${dir}/${file}`, value);
    } catch { /* no such controller mounted, or not writable here: the rlimits still apply */ }
  }
  return made;
}

/**
 * Removes cgroups made for a session (they empty once the child is reaped), trying for up to `waitMs`;
 * returns those that remain.
 */
export async function removeCgroups(dirs: string[], waitMs = 1000): Promise<string[]> {
  const left: string[] = [];
  for (const dir of dirs) {
    for (const deadline = Date.now() + waitMs;;) {
      try {
        await Deno.remove(dir);
        break;
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) break;
        if (Date.now() > deadline) {
          left.push(dir);
          break;
        }
        await new Promise((r) => setTimeout(r, 50)); /* the exited child is still being reaped */
      }
    }
  }
  return left;
}

/** The shell step that moves itself into the cgroups, then execs the rest (the pid stays bpftrace's). */
const ENTER = 'for g in $BPFD_CGROUPS; do echo $$ > "$g/cgroup.procs" || exit 111; done; exec "$@"';

/** Starts bpftrace on `script` with its output unbuffered; stdout and stderr are piped. */
export async function spawnBpftrace(script: string, opts: SpawnOptions): Promise<BpftraceChild> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const cgroups = await makeCgroups(opts.id, limits);
  const process = new Deno.Command("/bin/sh", {
    args: [
      "-c",
      ENTER,
      "bpfd-trace",
      "setpriv",
      "--pdeathsig",
      "KILL",
      "prlimit",
      `--as=${limits.memoryBytes * 4}`,
      `--cpu=${limits.cpuSeconds}:${limits.cpuSeconds + 5}`,
      "nice",
      "-n",
      "10",
      opts.bpftrace ?? "bpftrace",
      "-B",
      "none",
      "-e",
      script,
    ],
    env: { BPFD_CGROUPS: cgroups.join(" "), PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const pid = process.pid;
  const signal = (s: Deno.Signal) => {
    try {
      process.kill(s);
    } catch { /* already exited */ }
  };
  return {
    pid,
    startTime: processStartTime(pid) ?? "",
    cgroups,
    process,
    interrupt: () => signal("SIGINT"),
    kill: () => signal("SIGKILL"),
  };
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks), or undefined when there is no such process. */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined; /* no such process */
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ")".
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

/** Whether process `pid` is the one that started at `startTime` (and has not been reaped). */
export function isSameProcess(pid: number, startTime: string): boolean {
  return startTime !== "" && processStartTime(pid) === startTime;
}

/** The ids of the BPF programs process `pid` holds open (its fdinfo `prog_id` lines). */
export function heldProgramIds(pid: number): number[] {
  const ids = new Set<number>();
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync(`/proc/${pid}/fdinfo`);
  } catch {
    return []; /* exited */
  }
  for (const entry of entries) {
    try {
      const m = Deno.readTextFileSync(`/proc/${pid}/fdinfo/${entry.name}`).match(/^prog_id:\s*(\d+)$/m);
      if (m) ids.add(Number(m[1]));
    } catch { /* the fd was closed meanwhile */ }
  }
  return [...ids].sort((a, b) => a - b);
}

/** SIGKILLs process `pid` if it is still the one started at `startTime`; resolves once it is gone. */
export async function killIfSame(pid: number, startTime: string, timeoutMs = 5000): Promise<boolean> {
  if (!isSameProcess(pid, startTime)) return false;
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* exited meanwhile */ }
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
    const state = processState(pid);
    if (!isSameProcess(pid, startTime) || state === "Z" || state === "X") return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`process ${pid} did not end within ${timeoutMs} ms of SIGKILL`);
}

/** The state letter of /proc/<pid>/stat (R, S, Z, ...). */
function processState(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  } catch {
    return undefined; /* gone */
  }
}

/** A session that could not start: bpftrace refused the script (`refused`), or too many run (`too_many`). */
export class TraceError extends Error {
  constructor(readonly code: "refused" | "too_many", message: string) {
    super(message);
    this.name = "TraceError";
  }
}
