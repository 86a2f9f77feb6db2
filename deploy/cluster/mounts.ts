/**
 * The node's mount namespace: a pruned slave copy of the host's, rshared, with a fresh /run, so that
 * pods', containerd's and kubelet's mounts stay in it and vanish with it.
 * @module
 */
import { must, run } from "../../lib/command.ts";
import { CLUSTER_DIR, NS_DIR } from "./layout.ts";
import { exists } from "./processes.ts";

/**
 * Runs once in the node's new mount namespace (a slave copy of the host's). The copy is pruned first: a
 * copy of a private host mount (another test's bpffs or netns) would keep it alive after the host unmounts
 * it. Kept: /, /proc, /sys with cgroups and tracefs (never a bpffs), /dev. Then / becomes rshared
 * (Bidirectional propagation needs it; the host's / is private, so nothing propagates back), /run a
 * fresh tmpfs, and the paths kubelet and libcni hard-code (/var/log/pods, /var/lib/cni) the cluster's.
 */
const NODE_INIT = `set -e
awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { print $5, $(i + 1); break } }' /proc/self/mountinfo |
  sort -r | while read -r m t; do
  case $m in
  / | /proc | /sys | /dev | /sys/fs/cgroup | /sys/fs/cgroup/* | /sys/kernel/tracing | /dev/*)
    [ "$t" != bpf ] && continue
    ;;
  esac
  umount -l "$m" 2>/dev/null || true
done
mount --make-rshared /
mount -t tmpfs -o mode=0755 tmpfs /run
mount --bind "$1/node/log" /var/log
mount --bind "$1/node/cni" /var/lib/cni
`;

/** Directories the node needs on the host's filesystem that this machine lacks: made, and removed by down. */
export const MADE_DIRS = ["/var/lib/cni", "/lib/modules"];

/** The node's mount namespace, made once and kept at NS_DIR/mnt. */
export async function makeMountNamespace(): Promise<void> {
  await Deno.mkdir(NS_DIR, { recursive: true });
  if ((await run("mountpoint", ["-q", NS_DIR])).code !== 0) {
    await must("mount", ["--bind", NS_DIR, NS_DIR]);
    await must("mount", ["--make-private", NS_DIR]);
  }
  if (
    (await exists(`${NS_DIR}/mnt`)) && (await run("nsenter", [`--mount=${NS_DIR}/mnt`, "true"])).code === 0
  ) {
    return;
  }
  await Deno.writeTextFile(`${NS_DIR}/mnt`, "");
  await Deno.mkdir(`${CLUSTER_DIR}/node/log`, { recursive: true });
  await Deno.mkdir(`${CLUSTER_DIR}/node/cni`, { recursive: true });
  // The DaemonSet mounts /lib/modules (hostPath type Directory): a kernel without modules has none.
  for (const d of MADE_DIRS) {
    if (!(await exists(d))) {
      await Deno.mkdir(d, { recursive: true });
      await Deno.writeTextFile(`${CLUSTER_DIR}/made-dirs`, d + "\n", { append: true });
    }
  }
  await Deno.writeTextFile(`${CLUSTER_DIR}/node/init.sh`, NODE_INIT);
  await must("unshare", [
    `--mount=${NS_DIR}/mnt`,
    "--propagation",
    "slave",
    "sh",
    `${CLUSTER_DIR}/node/init.sh`,
    CLUSTER_DIR,
  ]);
}
