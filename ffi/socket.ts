/**
 * Who is at the other end of a unix stream connection, as the kernel recorded it at connect():
 * `SO_PEERCRED` and `SO_PEERGROUPS`; and which of this process's fds are the connections accepted on a
 * socket (Deno's own sockets do not expose their fds).
 *
 * @example
 * ```ts
 * const [{ fd }] = acceptedOn("/run/bpfd/.bpfd-socket-x/socket", () => false);
 * const { uid, gid, pid } = peerCredentials(fd);
 * ```
 * @module
 */
import { SysError } from "./errno.ts";
import { statFd } from "./files.ts";
import { lastErrno as errno, libc } from "./libc.ts";

const AF_UNIX = 1, SOL_SOCKET = 1, SO_PEERCRED = 17, SO_ACCEPTCONN = 30, SO_PEERGROUPS = 59;

/** Who is at the other end of a unix connection, as the kernel recorded it at connect(). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
  /** Supplementary groups (SO_PEERGROUPS). */
  groups: number[];
}

/** `getsockopt(fd, SOL_SOCKET, option)` into `value`: the length the kernel wrote, or -1 with errno set. */
function socketOption(fd: number, option: number, value: Uint8Array<ArrayBuffer>): number {
  const len = new Uint32Array([value.length]);
  return libc.getsockopt(fd, SOL_SOCKET, option, value, new Uint8Array(len.buffer)) === 0 ? len[0] : -1;
}

/** The peer's credentials of a connected unix socket. */
export function peerCredentials(fd: number): PeerCredentials {
  const cred = new Uint8Array(12);
  if (socketOption(fd, SO_PEERCRED, cred) < 0) throw new SysError("getsockopt SO_PEERCRED", errno());
  const view = new DataView(cred.buffer);
  const groups = new Uint32Array(256);
  const groupBytes = socketOption(fd, SO_PEERGROUPS, new Uint8Array(groups.buffer));
  return {
    pid: view.getInt32(0, true),
    uid: view.getUint32(4, true),
    gid: view.getUint32(8, true),
    groups: groupBytes > 0 ? [...groups.subarray(0, groupBytes / 4)] : [],
  };
}

/** A unix stream connection of this process accepted on a listening socket, by fd and socket inode. */
export interface AcceptedSocket {
  fd: number;
  ino: number;
}

/**
 * This process's connected (not listening) unix stream sockets whose local address is `path`: the
 * connections accepted on the socket bound there, found among the fds in /proc/self/fd (Deno's own
 * sockets do not expose their fds). `skip`: fds not to look at (already known).
 */
export function acceptedOn(path: string, skip: (fd: number) => boolean): AcceptedSocket[] {
  const want = new TextEncoder().encode(path);
  const addr = new Uint8Array(110), addrLen = new Uint32Array(1);
  const flag = new Int32Array(1);
  const found: AcceptedSocket[] = [];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    const fd = Number(entry.name);
    if (!Number.isInteger(fd) || skip(fd)) continue;
    let stat;
    try {
      stat = statFd(fd);
    } catch {
      continue; // closed meanwhile (the fd readdir itself used, too)
    }
    if (!stat.isSocket) continue;
    addrLen[0] = addr.length;
    if (libc.getsockname(fd, addr, new Uint8Array(addrLen.buffer)) !== 0) continue;
    const family = new DataView(addr.buffer).getUint16(0, true); // sockaddr_un: sun_family, sun_path
    if (family !== AF_UNIX || addrLen[0] < 2 + want.length || addr[2 + want.length] !== 0) continue;
    if (!want.every((b, i) => addr[2 + i] === b)) continue;
    const accepting = socketOption(fd, SO_ACCEPTCONN, new Uint8Array(flag.buffer));
    if (accepting < 0 || flag[0] !== 0) continue; // the listening socket itself
    found.push({ fd, ino: stat.ino });
  }
  return found;
}
