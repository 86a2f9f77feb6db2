/**
 * Where every program in the kernel is attached, as far as the kernel tells: BPF links of every type
 * (with their target: interface, cgroup, network namespace, tracepoint, function); XDP attached through
 * netlink, TCX attached without a link and tc cls_bpf filters (on every qdisc and class) on the interfaces
 * of the caller's network namespace and of every other one it finds (/run/netns, processes' namespaces);
 * cgroup attachments made without a link (BPF_PROG_QUERY on each cgroup2 directory, only when a cgroup
 * program has no link). Perf events without a link are found with their holders (kernel/holders.ts).
 *
 * @example
 * ```ts
 * const byProgram = kernelAttachments(new Set(["cgroup_skb"]));
 * byProgram.get(42); // [{ kind: "xdp", linkId: 7, iface: "eth0" }]
 * ```
 * @module
 */
import { mprogQuery } from "../ffi/bpf.ts";
import { xdpQuery } from "../ffi/netlink.ts";
import { linkIds } from "../ffi/libbpf.ts";
import { inNetns } from "../ffi/libc.ts";
import { MAX_TC_PARENTS, TcWalk } from "../ffi/tc_filters.ts";
import {
  ATTACH_TYPE_NAMES,
  CGROUP_ATTACH_TYPES,
  cgroupPrograms,
  interfaces,
  type LinkDetails,
  linkDetails,
} from "../ffi/introspect.ts";
import type { InventoryAttachment } from "../model/inventory.ts";

const TCX_INGRESS = 46, TCX_EGRESS = 47;

/** Program types that attach to cgroups. */
export const CGROUP_PROGRAM_TYPES = new Set([
  "cgroup_skb",
  "cgroup_sock",
  "cgroup_sock_addr",
  "cgroup_device",
  "cgroup_sysctl",
  "cgroup_sockopt",
  "sock_ops",
]);

/** Options of {@link kernelAttachments}. */
export interface AttachmentScan {
  /** Programs (id → kernel type) that may be attached to a cgroup without a link: cgroups are walked. */
  cgroupPrograms?: number[];
  /** The cgroup2 mount (default: found in /proc/self/mountinfo). */
  cgroupRoot?: string;
  /** At most this many cgroup directories are queried (default 4096). */
  maxCgroups?: number;
  /** At most this many network namespaces besides the caller's are looked in (default 1024). */
  maxNamespaces?: number;
  /** At most this many qdiscs and classes of an interface have their tc filters read (default 1024). */
  maxTcParents?: number;
  /** Told of each interface with more qdiscs and classes than `maxTcParents`: how many were not read. */
  onTcCapped?: (iface: string, skipped: number) => void;
}

/** A network namespace to look in: a path that enters it, how its interfaces are shown, its inode. */
interface Namespace {
  path?: string;
  suffix: string;
  ino?: number;
}

/** The network namespaces other than the caller's: named ones (/run/netns), then processes', by inode. */
function otherNamespaces(max: number): Namespace[] {
  const inode = (link: string) => Number(link.match(/^net:\[(\d+)\]$/)?.[1]);
  const seen = new Set([inode(Deno.readLinkSync("/proc/thread-self/ns/net"))]);
  const found: Namespace[] = [];
  const add = (path: string, ino: number, name?: string) => {
    if (!ino || seen.has(ino) || found.length >= max) return;
    seen.add(ino);
    found.push({ path, suffix: `@${name ?? `netns ${ino}`}`, ino });
  };
  try {
    for (const e of Deno.readDirSync("/run/netns")) {
      try {
        add(`/run/netns/${e.name}`, Deno.statSync(`/run/netns/${e.name}`).ino ?? 0, e.name);
      } catch { /* removed meanwhile */ }
    }
  } catch { /* no named namespaces */ }
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      add(`/proc/${e.name}/ns/net`, inode(Deno.readLinkSync(`/proc/${e.name}/ns/net`)));
    } catch { /* exited meanwhile */ }
  }
  return found;
}

function add(map: Map<number, InventoryAttachment[]>, id: number, a: InventoryAttachment): void {
  const list = map.get(id);
  if (list) list.push(a);
  else map.set(id, [a]);
}

function fromLink(l: LinkDetails, ifnames: Map<number, string>): InventoryAttachment {
  const a: InventoryAttachment = { kind: l.type, linkId: l.id };
  if (l.attachType) a.attachType = l.attachType;
  if (l.ifindex !== undefined) a.iface = ifnames.get(l.ifindex) ?? `ifindex ${l.ifindex} (other netns)`;
  if (l.cgroupId) a.cgroup = `id ${l.cgroupId}`;
  if (l.netnsIno) a.netnsIno = l.netnsIno;
  if (l.target) a.target = l.perfEvent ? `${l.perfEvent} ${l.target}` : l.target;
  else if (l.perfEvent) a.target = l.perfEvent;
  if (l.targetProgramId) a.target = `program ${l.targetProgramId}`;
  return a;
}

/** The cgroup2 mount point, from /proc/self/mountinfo. */
export function cgroup2Root(): string | undefined {
  const text = Deno.readTextFileSync("/proc/self/mountinfo");
  for (const line of text.split("\n")) {
    const [left, right] = line.split(" - ");
    if (right?.startsWith("cgroup2 ")) return left.split(" ")[4];
  }
  return undefined;
}

function cgroupDirs(root: string, max: number): string[] {
  const dirs = [root];
  for (let i = 0; i < dirs.length && dirs.length < max; i++) {
    try {
      for (const e of Deno.readDirSync(dirs[i])) {
        if (e.isDirectory && dirs.length < max) dirs.push(`${dirs[i]}/${e.name}`);
      }
    } catch { /* removed while walking */ }
  }
  return dirs;
}

/**
 * XDP through netlink, TCX without a link and tc cls_bpf filters on `ifaces` (of the calling thread's
 * network namespace, shown with `ns.suffix`).
 */
function interfaceAttachments(
  found: Map<number, InventoryAttachment[]>,
  ifaces: Array<{ index: number; name: string }>,
  linked: Set<string>,
  ns: Namespace,
  opts: AttachmentScan,
): void {
  using tc = new TcWalk();
  const where = (name: string) => ({ iface: `${name}${ns.suffix}`, ...(ns.ino ? { netnsIno: ns.ino } : {}) });
  for (const { index, name } of ifaces) {
    try {
      const xdp = xdpQuery(index);
      if (xdp.programId && !linked.has(`xdp:${index}:${xdp.programId}`)) {
        add(found, xdp.programId, {
          kind: "xdp (netlink)",
          ...where(name),
          ...(xdp.mode ? { mode: xdp.mode } : {}),
        });
      }
    } catch { /* interface gone meanwhile */ }
    for (const type of [TCX_INGRESS, TCX_EGRESS]) {
      try {
        const state = mprogQuery(index, type);
        state.programIds.forEach((programId, i) => {
          if (state.linkIds[i]) return; // a TCX link: listed above
          add(found, programId, {
            kind: "tcx (no link)",
            ...where(name),
            attachType: ATTACH_TYPE_NAMES[type],
          });
        });
      } catch { /* no TCX on this kernel or interface gone */ }
    }
    try {
      const { filters, skipped } = tc.bpfFilters(index, opts.maxTcParents ?? MAX_TC_PARENTS);
      if (skipped > 0) opts.onTcCapped?.(`${name}${ns.suffix}`, skipped);
      for (const f of filters) {
        add(found, f.programId, {
          kind: "tc (netlink)",
          ...where(name),
          attachType: f.parent,
          target: [
            `priority ${f.priority} handle 0x${f.handle.toString(16)}`,
            f.chain ? `chain ${f.chain}` : "",
            f.directAction ? "direct-action" : "",
            f.name ?? "",
          ].filter(Boolean).join(" "),
        });
      }
    } catch { /* interface gone meanwhile */ }
  }
}

/** Every attachment the kernel reports, by program id. */
export function kernelAttachments(opts: AttachmentScan = {}): Map<number, InventoryAttachment[]> {
  const found = new Map<number, InventoryAttachment[]>();
  const ifaces = interfaces();
  const ifnames = new Map(ifaces.map((i) => [i.index, i.name]));
  const linked = new Set<string>();
  for (const id of linkIds()) {
    const l = linkDetails(id);
    if (!l) continue; /* released meanwhile */
    add(found, l.programId, fromLink(l, ifnames));
    if (l.ifindex !== undefined) linked.add(`${l.type}:${l.ifindex}:${l.programId}`);
  }
  interfaceAttachments(found, ifaces, linked, { suffix: "" }, opts);
  for (const ns of otherNamespaces(opts.maxNamespaces ?? 1024)) {
    try {
      inNetns(ns.path, () => interfaceAttachments(found, interfaces(), linked, ns, opts));
    } catch { /* the namespace went away meanwhile */ }
  }
  const cgroupIds = new Set(opts.cgroupPrograms ?? []);
  for (const [id, list] of found) if (list.some((a) => a.kind === "cgroup")) cgroupIds.delete(id);
  if (cgroupIds.size > 0) {
    const root = opts.cgroupRoot ?? cgroup2Root();
    if (root) {
      for (const dir of cgroupDirs(root, opts.maxCgroups ?? 4096)) {
        for (const [type, ids] of cgroupPrograms(dir, CGROUP_ATTACH_TYPES)) {
          for (const id of ids) {
            if (!cgroupIds.has(id)) continue;
            add(found, id, {
              kind: "cgroup (no link)",
              attachType: ATTACH_TYPE_NAMES[type],
              cgroup: dir.slice(root.length) || "/",
            });
          }
        }
      }
    }
  }
  return found;
}
