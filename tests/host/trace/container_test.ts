/**
 * A trace session for a container: the runtime finds the container's first process by its id in the
 * cgroup paths, rewrites the uprobe's path into that process's root (`/proc/<pid>/root/...`), and the
 * probe counts the calls the process makes. Here the "container" is a process the test puts into a
 * pids cgroup named with a made-up container id.
 */
import assert from "node:assert/strict";
import { fixturePath, startTestRuntime } from "../../_runtime.ts";
import { startSession } from "./_session.ts";

const CALLS = 17;

Deno.test("trace: with a containerId, uprobe paths are read in the container's root and count its calls", async () => {
  await using rt = await startTestRuntime();
  const id = Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  const cgroup = `/sys/fs/cgroup/pids/bpfd-test-${id}`;
  await Deno.mkdir(cgroup);
  const target = fixturePath("uprobe_target");
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", `echo $$ > ${cgroup}/cgroup.procs && exec ${target} ${CALLS}`],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  try {
    for (let i = 0; i < 100 && !(await Deno.readTextFile(`/proc/${child.pid}/cgroup`)).includes(id); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const unknown = await startSession((p, init) => rt.app.request(p, init), {
      script: `uprobe:${target}:bpfd_probe_target { @calls = count(); }`,
      containerId: `containerd://${"0".repeat(64)}`,
    });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.error.field, "containerId");

    const { status, stream, body } = await startSession((p, init) => rt.app.request(p, init), {
      script: `uprobe:${target}:bpfd_probe_target { @calls = count(); } BEGIN { printf("ready\\n"); }`,
      containerId: `containerd://${id}`,
      seconds: 3,
    });
    assert.equal(status, 200, JSON.stringify(body));
    assert.ok(await stream!.until((e) => e.line === "ready"));
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode("go\n"));
    await writer.close();
    assert.equal((await child.output()).code, 0);
    const end = await stream!.rest();
    assert.equal(end.reason, "expired");
    assert.ok(stream!.lines().includes(`@calls: ${CALLS}`), stream!.lines().join("\n"));
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await Deno.remove(cgroup);
  }
});
