/**
 * The cluster's processes: started detached with a pid file each, stopped by that pid only, and the lock
 * that keeps one `up` or `down` at a time on this machine.
 * @module
 */
import { IN_NODE, logs, pids } from "./layout.ts";

/** The order the node's processes start in (and stop in reverse). */
export const PROCESSES = [
  "etcd",
  "apiserver",
  "relay-node",
  "relay-host",
  "kcm",
  "scheduler",
  "containerd",
  "kubelet",
] as const;
/** One of {@link PROCESSES}. */
export type ProcessName = typeof PROCESSES[number];

/** Whether `path` exists (a dangling symlink counts). */
export const exists = (path: string): Promise<boolean> => Deno.lstat(path).then(() => true, () => false);

/** Polls `check` every 200 ms until it returns true; throws naming `what` after `seconds`. */
export async function waitUntil(what: string, seconds: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${seconds} s waiting for ${what}${last ? ` (${last})` : ""}`);
}

interface PidFile {
  pid: number;
  /** argv[0] of the process, to tell it from an unrelated process that got the same pid later. */
  exe: string;
}

/** The pid of a process `up` started, while that process still runs. */
export async function pidOf(name: ProcessName): Promise<number | undefined> {
  let f: PidFile;
  try {
    f = JSON.parse(await Deno.readTextFile(`${pids}/${name}`));
  } catch {
    return undefined;
  }
  try {
    const argv0 = (await Deno.readTextFile(`/proc/${f.pid}/cmdline`)).split("\0")[0];
    return argv0 === f.exe ? f.pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Starts a detached process (its own session, so it outlives this command) in the node, or on the host
 * when `host`; its output goes to logs/NAME.log and its pid to pids/NAME. A running one is kept.
 */
export async function start(name: ProcessName, args: string[], host = false): Promise<boolean> {
  if (await pidOf(name)) return false;
  const prefix = host ? [] : IN_NODE;
  const child = new Deno.Command("setsid", {
    args: ["sh", "-c", `exec "$@" >>'${logs}/${name}.log' 2>&1`, "sh", ...prefix, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  // setsid, sh and nsenter exec in turn: the pid is the program's.
  await Deno.writeTextFile(`${pids}/${name}`, JSON.stringify({ pid: child.pid, exe: args[0] }));
  await waitUntil(`${name} to exec`, 10, async () => (await pidOf(name)) !== undefined);
  return true;
}

/** SIGTERM, then SIGKILL after `seconds`; only the pid this cluster recorded. */
export async function stop(name: ProcessName, seconds = 10): Promise<void> {
  const pid = await pidOf(name);
  if (pid) await killPid(pid, seconds);
  await Deno.remove(`${pids}/${name}`).catch(() => {});
}

/** SIGTERM to `pid`, SIGKILL after `seconds`; returns when it is gone. */
export async function killPid(pid: number, seconds: number): Promise<void> {
  const gone = () => exists(`/proc/${pid}`).then((e) => !e);
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline && !(await gone())) await new Promise((r) => setTimeout(r, 100));
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* gone */ }
  while (!(await gone())) await new Promise((r) => setTimeout(r, 50));
}

/** Runs `f` holding the cluster's lock: one `up` or `down` at a time on this machine. */
export async function locked<T>(f: () => Promise<T>): Promise<T> {
  const dir = Deno.env.get("BPFD_KUBE_CACHE")?.replace(/\/kube$/, "") ?? "/var/cache/bpfd";
  await Deno.mkdir(dir, { recursive: true });
  const lock = await Deno.open(`${dir}/cluster.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    return await f();
  } finally {
    lock.close();
  }
}
