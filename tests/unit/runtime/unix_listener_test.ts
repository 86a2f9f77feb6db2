/**
 * runtime/unix_listener.ts: every connection is served with its own caller's credentials, however many
 * arrive at once and however fast they come and go (the listener finds each accepted connection's fd among
 * the process's fds); the socket file has its mode before it appears, and no staging directory is left.
 * Clients are curl processes, whose pids the kernel reports.
 * @module
 */
import assert from "node:assert/strict";
import { listenUnix } from "../../../runtime/unix_listener.ts";
import { DEFAULT_HTTP_LIMITS } from "../../../runtime/http1.ts";
import { Logger } from "../../../lib/log.ts";

/** A listener that answers each request with the pid the kernel names for its connection. */
async function echoPeers(dir: string) {
  const socket = `${dir}/test.sock`;
  const modes: number[] = [];
  const listener = await listenUnix(
    socket,
    (_req, peer) => Response.json({ pid: peer.pid, uid: peer.uid }),
    {
      maxConnections: 64,
      limits: DEFAULT_HTTP_LIMITS,
      log: new Logger("error"),
      beforeListen: async (path) => {
        await Deno.chmod(path, 0o660);
        modes.push(Deno.statSync(path).mode! & 0o777);
      },
    },
  );
  return { socket, listener, modes };
}

/** curl, `requests` times over one kept-alive connection; its pid and the pids the answers named. */
async function curl(socket: string, requests: number): Promise<{ pid: number; named: number[] }> {
  const child = new Deno.Command("curl", {
    args: ["-s", "--unix-socket", socket, ...Array.from({ length: requests }, () => "http://bpfd/peer")],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const { code, stdout, stderr } = await child.output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const named = new TextDecoder().decode(stdout).split("}").filter((s) => s.trim())
    .map((s) => JSON.parse(`${s}}`).pid as number);
  return { pid: child.pid, named };
}

Deno.test("unix listener: 20 clients at once, three times, each served as itself; mode set before anyone can connect", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-unix-listener-" });
  await Deno.mkdir(`${dir}/.test.sock.staging-left-by-a-killed-runtime`);
  const { socket, listener, modes } = await echoPeers(dir);
  try {
    assert.deepEqual(modes, [0o660]);
    assert.equal(Deno.statSync(socket).mode! & 0o777, 0o660);
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name),
      ["test.sock"],
      "no staging directory left",
    );
    for (let round = 0; round < 3; round++) {
      const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => curl(socket, 1 + (i % 3))));
      for (const { pid, named } of clients) {
        assert.equal(named.length >= 1, true);
        assert.deepEqual(named, named.map(() => pid), `curl ${pid} was served as ${named.join(", ")}`);
      }
    }
  } finally {
    listener.close();
    await listener.finished;
    await Deno.remove(dir, { recursive: true });
  }
});
