/**
 * The memory baseline of the node bench: a bare `Deno.serve` on a unix socket that answers JSON, run with
 * the runtime's deno arguments. What the runtime adds is measured against it.
 *
 * @module
 */
const [socket] = Deno.args;
Deno.serve({ path: socket, onListen: () => {} }, async (req) => Response.json({ echo: await req.text() }));
