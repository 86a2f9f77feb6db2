/**
 * A TCP forwarder for the cluster tests: `deno run -A _forward.ts LISTEN_HOST PORT TO_HOST TO_PORT`.
 * Node runtimes run in their own network namespaces, where 127.0.0.1 is not the API server's: one
 * forwarder in the namespace (127.0.0.1:PORT → the host end of the node's veth) and one in the root
 * namespace (that address → 127.0.0.1:PORT) let a runtime use the admin kubeconfig unchanged.
 *
 * @module
 */
const [host, port, toHost, toPort] = Deno.args;
const listener = Deno.listen({ hostname: host, port: Number(port) });
console.log("listening");
for await (const conn of listener) {
  (async () => {
    try {
      const upstream = await Deno.connect({ hostname: toHost, port: Number(toPort) });
      await Promise.all([
        conn.readable.pipeTo(upstream.writable).catch(() => {}),
        upstream.readable.pipeTo(conn.writable).catch(() => {}),
      ]);
    } catch { /* the peer went away: drop this connection */ }
    try {
      conn.close();
    } catch { /* closed by the pipes */ }
  })();
}
