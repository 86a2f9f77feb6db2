/**
 * Taking the cluster down without a trace (processes, containers, mounts, namespaces, cgroups, state), and
 * its status.
 * @module
 */
import { must, run } from "../../lib/command.ts";
import { CLUSTER_DIR, ctr, IN_NODE, NODE_NETNS, NS_DIR, PEER_NETNS } from "./layout.ts";
import { exists, killPid, locked, pidOf, PROCESSES, stop, waitUntil } from "./processes.ts";

/** Stops everything `up` started and removes every trace: processes, mounts, namespaces, cgroups, state. */
export function down(): Promise<void> {
  return locked(downLocked);
}

async function downLocked(): Promise<void> {
  const nsAlive = (await exists(`${NS_DIR}/mnt`)) &&
    (await run("nsenter", [`--mount=${NS_DIR}/mnt`, "true"])).code === 0;
  await stop("kubelet");
  if (await pidOf("containerd")) {
    // Every container of this containerd, killed through it (the shims are their parents).
    const nss = (await ctr(["namespaces", "ls", "-q"])).stdout.split("\n").filter(Boolean);
    for (const ns of nss) {
      for (const t of (await ctr(["-n", ns, "tasks", "ls", "-q"])).stdout.split("\n").filter(Boolean)) {
        await ctr(["-n", ns, "tasks", "kill", "-s", "KILL", t]);
      }
    }
    await waitUntil("containers to end", 15, async () => {
      for (const ns of nss) {
        const ls = await ctr(["-n", ns, "tasks", "ls"]);
        if (/RUNNING|STOPPING/.test(ls.stdout)) return false;
      }
      return true;
    }).catch(() => {});
    for (const ns of nss) {
      for (const t of (await ctr(["-n", ns, "tasks", "ls", "-q"])).stdout.split("\n").filter(Boolean)) {
        await ctr(["-n", ns, "tasks", "delete", "-f", t]);
      }
    }
  }
  for (const p of [...PROCESSES].reverse()) if (p !== "kubelet") await stop(p);
  if (nsAlive) {
    // Shims that outlived containerd: their pid files are in the node's /run.
    const list = await run(IN_NODE[0], [
      `--mount=${NS_DIR}/mnt`,
      "--",
      "sh",
      "-c",
      "cat /run/containerd/io.containerd.runtime.v2.task/*/*/shim.pid 2>/dev/null; echo",
    ]);
    for (const pid of list.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      if (pid > 1) await killPid(pid, 0);
    }
  }
  if ((await run("mountpoint", ["-q", NS_DIR])).code === 0) {
    await run("umount", [`${NS_DIR}/mnt`]);
    await must("umount", [NS_DIR]);
  }
  await Deno.remove(NS_DIR, { recursive: true }).catch(() => {});
  for (const ns of [NODE_NETNS, PEER_NETNS]) {
    if (await exists(`/run/netns/${ns}`)) await must("ip", ["netns", "del", ns]);
  }
  // containerd (cgroupfs; kubelet with cgroupsPerQOS off) puts every container under /k8s.io/<id>.
  for (
    const h of [
      "cpu",
      "cpuacct",
      "cpuset",
      "memory",
      "devices",
      "freezer",
      "blkio",
      "pids",
      "systemd",
      "unified",
      "net_cls",
      "net_prio",
      "perf_event",
      "hugetlb",
      "rdma",
      "misc",
    ]
  ) {
    const dir = `/sys/fs/cgroup/${h}/k8s.io`;
    if (await exists(dir)) await run("find", [dir, "-depth", "-type", "d", "-exec", "rmdir", "{}", "+"]);
  }
  const made = await Deno.readTextFile(`${CLUSTER_DIR}/made-dirs`).catch(() => "");
  for (const d of made.split("\n").filter(Boolean)) await Deno.remove(d).catch(() => {});
  await Deno.remove(CLUSTER_DIR, { recursive: true }).catch(() => {});
}

/** Each process `up` starts, with its pid when it runs. */
export async function status(): Promise<Record<string, number | undefined>> {
  const s: Record<string, number | undefined> = {};
  for (const p of PROCESSES) s[p] = await pidOf(p);
  return s;
}
