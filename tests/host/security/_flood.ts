/**
 * Opens up to N idle TCP connections to host:port (run as an unprivileged user by limits_test.ts), prints
 * how many it got after `openMs`, holds them for `holdMs`, then exits (which closes them all).
 *
 * @module
 */
const [hostname, port, count, openMs, holdMs] = Deno.args;
const conns: Deno.Conn[] = [];
let failed = 0;
const deadline = Date.now() + Number(openMs);
for (let i = 0; i < Number(count) && Date.now() < deadline; i += 500) {
  const batch = Array.from(
    { length: Math.min(500, Number(count) - i) },
    () => Deno.connect({ hostname, port: Number(port) }).then((c) => conns.push(c), () => failed++),
  );
  await Promise.race([
    Promise.allSettled(batch),
    new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now()))),
  ]);
}
console.log(JSON.stringify({ opened: conns.length, failed }));
await new Promise((r) => setTimeout(r, Number(holdMs)));
Deno.exit(0);
