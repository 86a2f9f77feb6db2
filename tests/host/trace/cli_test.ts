/**
 * `bpfd trace` against a runtime process on its unix socket: the output comes as bpftrace prints it and
 * ends with its maps and the session's end; a script bpftrace refuses exits 1 with bpftrace's message;
 * list shows the session's programs as the session's while it runs.
 */
import assert from "node:assert/strict";
import { RuntimeProcess } from "../../_runtime.ts";

const cli = new URL("../../../cli/main.ts", import.meta.url).pathname;

async function bpfdTrace(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, "trace", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code, out: new TextDecoder().decode(stdout), err: new TextDecoder().decode(stderr) };
}

Deno.test("bpfd trace: prints bpftrace's lines and final maps; refused scripts exit 1 with bpftrace's message", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-trace-cli-" });
  const rt = await RuntimeProcess.start(dir);
  try {
    const script = 'BEGIN { printf("hello from bpftrace\\n"); @answer = 42; } ' +
      "tracepoint:syscalls:sys_enter_getppid { @calls = count(); }";
    const ok = await bpfdTrace("--socket", rt.socket, "-e", script, "--duration", "2s");
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /^hello from bpftrace$/m);
    assert.match(ok.out, /^@answer: 42$/m);
    assert.match(ok.err, /session [0-9a-f]{8} on local until /);
    assert.match(ok.err, /session ended: expired/);

    const json = await bpfdTrace("--socket", rt.socket, "-o", "json", "-e", "BEGIN { exit(); }");
    const events = json.out.trim().split("\n").map((l) => JSON.parse(l));
    assert.ok(events[0].session);
    assert.equal(events.at(-1).end.reason, "exited");

    const bad = await bpfdTrace("--socket", rt.socket, "-e", "tracepoint:nope:nope { @ = count(); }");
    assert.equal(bad.code, 1);
    assert.match(bad.err, /tracepoint not found: nope:nope/);

    // Ctrl-C once: the session is stopped and its maps still printed.
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", cli, "trace", "--socket", rt.socket, "-e", script, "--duration", "60s"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("hello from bpftrace")) text += (await out.read()).value ?? "";
    child.kill("SIGINT");
    for (let r = await out.read(); !r.done; r = await out.read()) text += r.value;
    const status = await child.status;
    const err = await new Response(child.stderr).text();
    assert.equal(status.code, 0, err);
    assert.match(text, /^@answer: 42$/m);
    assert.match(err, /session ended: stopped/);

    const usage = await bpfdTrace("--socket", rt.socket, "--duration", "soon", "-e", "BEGIN {}");
    assert.equal(usage.code, 2);
    assert.match(usage.err, /--duration takes 30s/);
  } finally {
    await rt.stop("SIGKILL");
    await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true });
  }
});
