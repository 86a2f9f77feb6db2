/**
 * A node runtime that cannot mount its bpffs (a file where the bpffs should be) says so in its last log line
 * and exits 1 — in a pod, that line is the termination message (FallbackToLogsOnError) — and mounts nothing.
 */
import * as assert from "node:assert/strict";
import { RUNTIME_DENO_ARGS } from "../../../runtime/launch.ts";
import { mounts } from "../../../kernel/mounts.ts";

Deno.test("runtime start: bpffs not mountable → one error line naming the path and the cause, exit 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-start-failure-" });
  try {
    await Deno.writeTextFile(`${dir}/fs`, "in the way\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        ...RUNTIME_DENO_ARGS,
        new URL("../../../runtime/main.ts", import.meta.url).pathname,
        ...["--state-dir", `${dir}/state`, "--bpffs", `${dir}/fs`, "--socket", `${dir}/state/bpfd.sock`],
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 1);
    const last = JSON.parse(new TextDecoder().decode(out.stderr).trim().split("\n").at(-1)!);
    assert.equal(last.level, "error");
    assert.equal(last.msg, "cannot start");
    assert.equal(last.error, `cannot mount bpffs at ${dir}/fs: ${dir}/fs exists and is not a directory`);
    assert.equal(await Deno.readTextFile(`${dir}/fs`), "in the way\n");
    assert.ok(![...(await mounts()).keys()].some((p) => p.startsWith(dir)), "nothing mounted");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
