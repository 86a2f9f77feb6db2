/**
 * The unix socket listener: Deno's own listener, so that connections are read and written by the event
 * loop's reactor, and each caller known by the kernel's `SO_PEERCRED`/`SO_PEERGROUPS`. Deno does not say
 * which fd a connection has, so on each accept the listener finds it among the process's fds: the one
 * connected socket on its address that is not a connection it already knows (ffi/socket.ts `acceptedOn`;
 * one accept at a time, so there is exactly one). A connection it cannot tell apart is closed unserved.
 *
 * The socket is bound in a fresh 0700 directory, given its owner and mode there (`beforeListen`), then
 * renamed into place: nobody can connect before it has them.
 *
 * @example
 * ```ts
 * const l = await listenUnix("/run/bpfd/bpfd.sock", (req, peer) => app.fetch(req, { peer }), options);
 * ```
 * @module
 */
import { acceptedOn, type PeerCredentials, peerCredentials } from "../ffi/socket.ts";
import { ConnListener, type ConnListenerOptions, type PeerHandler } from "./conn_listener.ts";

/** The bounds of the socket, and what to do to its file before anyone may connect. */
export interface UnixListenerOptions extends ConnListenerOptions {
  /** Called with the socket file's path before it is moved into place: set its owner and mode here. */
  beforeListen?: (path: string) => Promise<void>;
}

/** sockaddr_un's sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;

/** How long a finished connection's socket is not mistaken for a new one (Deno may close its fd late). */
const RETIRED_MS = 10_000;

/** Binds `path` (replacing a stale socket file there) and serves until `close`. */
export async function listenUnix(
  path: string,
  handler: PeerHandler<PeerCredentials>,
  options: UnixListenerOptions,
): Promise<ConnListener<PeerCredentials>> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const prefix = `.${path.slice(path.lastIndexOf("/") + 1)}.staging-`;
  for (const e of Deno.readDirSync(dir)) { // left by a runtime killed while it started
    if (e.name.startsWith(prefix)) await Deno.remove(`${dir}/${e.name}`, { recursive: true }).catch(() => {});
  }
  const staging = await Deno.makeTempDir({ dir, prefix }); // 0700, the runtime's
  const bound = `${staging}/s`; // the address connections report, after the rename too
  if (new TextEncoder().encode(bound).length > MAX_SOCKET_PATH) {
    await Deno.remove(staging);
    throw new Error(`${path}: the socket's directory path is too long to bind a socket in it`);
  }
  try {
    const listener = Deno.listen({ transport: "unix", path: bound });
    try {
      await options.beforeListen?.(bound);
      await Deno.rename(bound, path);
    } catch (err) {
      listener.close();
      throw err;
    }
    return new ConnListener(listener, peerTracker(bound), handler, options);
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}

/** Finds each accepted connection's fd and peer credentials; forgets it once it has ended. */
function peerTracker(bound: string) {
  const live = new Map<number, number>(); // fd → socket inode
  const retired = new Map<number, number>(); // socket inode → until (ms)
  return (_conn: Deno.Conn) => {
    const now = Date.now();
    for (const [ino, until] of retired) { // in the order retired, so in the order they expire
      if (until >= now) break;
      retired.delete(ino);
    }
    let found;
    try {
      found = acceptedOn(bound, (fd) => live.has(fd)).filter((s) => !retired.has(s.ino));
    } catch {
      return undefined; // /proc unreadable: no peer to name
    }
    if (found.length !== 1) return undefined;
    const [{ fd, ino }] = found;
    let peer: PeerCredentials;
    try {
      peer = peerCredentials(fd);
    } catch {
      return undefined; // a peer the kernel cannot name is not served
    }
    live.set(fd, ino);
    return {
      peer,
      done: () => {
        live.delete(fd);
        retired.delete(ino); // (a re-insert keeps the map in expiry order)
        retired.set(ino, Date.now() + RETIRED_MS);
      },
    };
  };
}
