/**
 * Which processes hold BPF programs, as `bpftool prog show` and `bpftool perf` find them: every
 * `/proc/<pid>/fd` entry that is a bpf-prog or bpf-link fd (the program id from its fdinfo), or a perf
 * event with a program attached without a link (BPF_TASK_FD_QUERY: bcc, bpftrace); each holder with its
 * command and the container and pod UID its cgroup names (kubelet's `kubepods` paths, cgroupfs and systemd
 * drivers). Processes that exit while being read are skipped. The scan yields to the event loop.
 *
 * @example
 * ```ts
 * const { holders, perfEvents } = await scanHolders({ skipPids: [Deno.pid] });
 * holders.get(42); // [{ pid: 1234, comm: "bpftool", podUid: "…", containerId: "…" }]
 * perfEvents.get(43); // [{ kind: "perf_event (no link)", attachType: "uprobe", target: "/usr/bin/x+0x1179" }]
 * ```
 * @module
 */
import { taskFdQuery } from "../ffi/bpf.ts";
import type { InventoryAttachment } from "../model/schemas.ts";

/** One process holding a program (directly, or through a link to it). */
export interface Holder {
  pid: number;
  comm: string;
  /** The container id from the process's cgroup, when it runs in a Kubernetes pod. */
  containerId?: string;
  /** The pod's UID from the process's cgroup. */
  podUid?: string;
}

/**
 * Where a process runs, from the lines of /proc/<pid>/cgroup: the pod UID and container id of a kubepods
 * path; else a container id that ends a path (`/<id>`, `cri-containerd-<id>.scope`: a kubelet without
 * per-QoS cgroups puts containers under the root), to be matched with the pods' container statuses.
 */
export function podOfCgroup(cgroupFile: string): { podUid?: string; containerId?: string } {
  let bare: string | undefined; // a container id outside kubepods
  for (const line of cgroupFile.split("\n")) {
    const path = line.slice(line.indexOf(":", line.indexOf(":") + 1) + 1);
    if (!path.includes("kubepods")) {
      bare ??= path.match(/[/-]([0-9a-f]{64})(?:\.scope)?$/)?.[1];
      continue;
    }
    // cgroupfs: /kubepods/besteffort/pod<uid>/<container>; systemd: kubepods-...-pod<uid_with_>.slice/
    // cri-containerd-<container>.scope (also docker-, crio-).
    const pod = path.match(/pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})/);
    if (!pod) continue;
    const rest = path.slice(pod.index! + pod[0].length);
    const container = rest.match(/([0-9a-f]{64})/);
    return {
      podUid: pod[1].replaceAll("_", "-"),
      ...(container ? { containerId: container[1] } : {}),
    };
  }
  return bare ? { containerId: bare } : {};
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined; /* the process or fd went away while being read */
  }
}

/** A perf event's program as an attachment without a link. */
function perfAttachment(
  pid: number,
  fd: number,
): { programId: number; attachment: InventoryAttachment } | undefined {
  const found = taskFdQuery(pid, fd);
  if (!found) return undefined; // no program on it, or closed meanwhile
  const { programId, fdType, target, offset } = found;
  const at = offset ? `${target}+0x${offset.toString(16)}` : target;
  return { programId, attachment: { kind: "perf_event (no link)", attachType: fdType, target: at } };
}

/**
 * The program ids the fds of process `pid` hold (programs directly, links and perf events through their
 * program), and the perf events among them.
 */
function heldPrograms(pid: number, perfEvents: Map<number, InventoryAttachment[]>): Set<number> {
  const held = new Set<number>();
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync(`/proc/${pid}/fd`);
  } catch {
    return held; /* exited, or not ours to read */
  }
  for (const e of entries) {
    let target: string;
    try {
      target = Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`);
    } catch {
      continue; /* closed meanwhile */
    }
    if (target === "anon_inode:[perf_event]") {
      const perf = perfAttachment(pid, Number(e.name));
      if (!perf) continue;
      held.add(perf.programId);
      const list = perfEvents.get(perf.programId);
      if (list) list.push(perf.attachment);
      else perfEvents.set(perf.programId, [perf.attachment]);
      continue;
    }
    if (target !== "anon_inode:bpf-prog" && target !== "anon_inode:bpf_link") continue;
    const fdinfo = readText(`/proc/${pid}/fdinfo/${e.name}`);
    const id = fdinfo?.match(/^prog_id:\s*(\d+)/m);
    if (id) held.add(Number(id[1]));
  }
  return held;
}

/** Options of {@link scanHolders}. */
export interface ScanOptions {
  /** Processes not to report (the runtime itself: it holds bpfd's programs). */
  skipPids?: number[];
  /** The /proc to read (tests). */
  proc?: string;
  /** Stop after this many processes (a bound on the work of one scan). */
  maxProcesses?: number;
}

/** What {@link scanHolders} finds, by program id. */
export interface Held {
  /** The processes holding each program. */
  holders: Map<number, Holder[]>;
  /** Perf events with the program attached without a link. */
  perfEvents: Map<number, InventoryAttachment[]>;
}

/** Every process holding a BPF program, and the perf events that run one, by program id. */
export async function scanHolders(opts: ScanOptions = {}): Promise<Held> {
  const skip = new Set(opts.skipPids ?? []);
  const found = new Map<number, Holder[]>();
  const perfEvents = new Map<number, InventoryAttachment[]>();
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (Number.isInteger(pid) && pid > 0 && !skip.has(pid)) pids.push(pid);
  }
  const max = opts.maxProcesses ?? 100_000;
  for (const [i, pid] of pids.slice(0, max).entries()) {
    if (i % 32 === 31) await new Promise((r) => setTimeout(r, 0));
    const held = heldPrograms(pid, perfEvents);
    if (held.size === 0) continue;
    const comm = readText(`/proc/${pid}/comm`)?.trim();
    if (comm === undefined) continue;
    const holder: Holder = { pid, comm, ...podOfCgroup(readText(`/proc/${pid}/cgroup`) ?? "") };
    for (const id of held) {
      const list = found.get(id);
      if (list) list.push(holder);
      else found.set(id, [holder]);
    }
  }
  return { holders: found, perfEvents };
}
