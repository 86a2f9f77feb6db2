/**
 * What the security tests attack with: commands run as another user (`setpriv`), raw HTTP/1.1 over TCP or
 * a unix socket (to send what fetch will not: any Host, a lying Content-Length, half a request), a free
 * loopback port and the API's groups.
 *
 * @module
 */

/** A user to act as: uid and gid 65534 (`nobody`) unless said otherwise, with these groups only. */
export interface As {
  uid?: number;
  groups?: number[];
}

/** Runs `cmd` as `as`; exit code, stdout and stderr. */
export async function runAs(
  as: As,
  cmd: string,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const uid = as.uid ?? 65534;
  const groups = as.groups?.length ? [`--groups=${as.groups.join(",")}`] : ["--clear-groups"];
  const { code, stdout, stderr } = await new Deno.Command("setpriv", {
    args: [`--reuid=${uid}`, `--regid=${uid}`, ...groups, cmd, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, out: text.decode(stdout), err: text.decode(stderr) };
}

/** POSTs JSON to a function on `socket` with curl as `as`: the HTTP status (0: no connection) and body. */
export async function curlAs(
  as: As,
  socket: string,
  fn: string,
  body: unknown,
): Promise<{ status: number; body: string }> {
  const r = await runAs(as, "curl", [
    "-s",
    "--max-time",
    "10",
    "--unix-socket",
    socket,
    "-H",
    "content-type: application/json",
    "-d",
    JSON.stringify(body),
    "-w",
    "\n%{http_code}",
    `http://bpfd/v1/functions/${fn}`,
  ]);
  const at = r.out.lastIndexOf("\n");
  return { status: Number(r.out.slice(at + 1)), body: r.out.slice(0, at) };
}

/** The gid of a group, created (as scripts/setup.sh does) if this machine lacks it. */
export async function ensureGroup(name: string): Promise<number> {
  const find = async () =>
    (await Deno.readTextFile("/etc/group")).split("\n").find((l) => l.startsWith(`${name}:`))?.split(":")[2];
  let gid = await find();
  if (gid === undefined) {
    await new Deno.Command("groupadd", { args: ["--system", name] }).output();
    gid = await find();
  }
  if (gid === undefined) throw new Error(`cannot create group ${name}`);
  return Number(gid);
}

/** A loopback port nobody listens on now. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Sends `head` (and `body`) on a fresh connection and reads the answer until the server closes or 5 s pass. */
export async function rawHttp(
  to: Deno.ConnectOptions | Deno.UnixConnectOptions,
  head: string,
  body = "",
): Promise<{ status: number; text: string }> {
  const conn = await Deno.connect(to as Deno.ConnectOptions);
  const timer = setTimeout(() => conn.close(), 5000);
  try {
    await conn.write(new TextEncoder().encode(head + body));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(64 << 10);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      const text = new TextDecoder().decode(concat(chunks));
      const end = text.indexOf("\r\n\r\n");
      const length = Number(text.match(/content-length: (\d+)/i)?.[1] ?? -1);
      if (end >= 0 && length >= 0 && text.length >= end + 4 + length) break;
    }
    const text = new TextDecoder().decode(concat(chunks));
    return { status: Number(text.match(/^HTTP\/1\.1 (\d{3})/)?.[1] ?? 0), text };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) out.set(c, (at += c.length) - c.length);
  return out;
}
