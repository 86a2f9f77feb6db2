// A map volume used by a process without privileges (uid 1000, the volume's group, no capabilities), on
// this kernel: it reads the counter of a real XDP program, flips its drop switch (the next run drops), and
// consumes its ring buffer records; the read-only volume refuses writes. The program runs with
// BPF_PROG_TEST_RUN (bpftool prog run); the cluster tier does the same with real traffic.
import assert from "node:assert/strict";
import { bpffsMountsUnder, publishMapVolume, unpublishMapVolume } from "../../../kernel/map_volumes.ts";
import { run } from "../../../lib/command.ts";

const root = new URL("../../..", import.meta.url).pathname;
const OBJECT = `${root}bytecode/build/xdp_gate.bpf.o`;
const GID = 3000;

/** What the unprivileged child does with the volume at `dir`: JSON out. */
const CHILD = `
import { consumeRingBuffer, readMapU64, updateMapU32 } from "${root}client/maps.ts";
const [dir, action] = Deno.args;
const out = {};
if (action === "read") out.packets = String(readMapU64(dir + "/gate_packets"));
if (action === "drop") { updateMapU32(dir + "/gate_drop", 0, 1); out.dropped = true; }
if (action === "try-write") {
  try { updateMapU32(dir + "/gate_drop", 0, 1); out.wrote = true; } catch (e) { out.error = String(e); }
}
if (action === "ring") {
  const records = [];
  await consumeRingBuffer(dir + "/gate_events", (r) => {
    const v = new DataView(r.buffer);
    records.push({ len: v.getUint32(0, true), verdict: v.getUint32(4, true) });
  }, { until: () => true });
  out.records = records;
}
console.log(JSON.stringify(out));
`;

async function unprivileged(dir: string, action: string, work: string): Promise<Record<string, unknown>> {
  const r = await run("setpriv", [
    "--reuid=1000",
    `--regid=${GID}`,
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
    "--no-new-privs",
    "env",
    `DENO_DIR=${work}/deno`,
    `HOME=${work}`,
    Deno.execPath(),
    "run",
    "-A",
    "--no-lock",
    `${work}/child.js`,
    dir,
    action,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

Deno.test("map volume without privileges: read the counter, flip the drop switch, consume the ring buffer", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-unpriv-" });
  try {
    await Deno.chmod(dir, 0o755);
    const work = `${dir}/work`;
    await Deno.mkdir(work);
    await Deno.chown(work, 1000, GID);
    await Deno.writeTextFile(`${work}/child.js`, CHILD);
    await Deno.mkdir(`${dir}/node`);
    assert.equal((await run("mount", ["-t", "bpf", "bpffs", `${dir}/node`])).code, 0);
    const loaded = await run("bpftool", [
      "prog",
      "loadall",
      OBJECT,
      `${dir}/node/prog`,
      "pinmaps",
      `${dir}/node/maps`,
    ]);
    assert.equal(loaded.code, 0, loaded.stderr);
    const packet = `${dir}/packet`;
    await Deno.writeFile(packet, new Uint8Array(64));
    const runProgram = async () => {
      const r = await run("bpftool", [
        "prog",
        "run",
        "pinned",
        `${dir}/node/prog/xdp_gate`,
        "data_in",
        packet,
        "repeat",
        "1",
      ]);
      assert.equal(r.code, 0, r.stderr);
      return Number(r.stdout.match(/Return value: (\d+)/)![1]);
    };
    const maps = Object.fromEntries(
      ["gate_packets", "gate_drop", "gate_events"].map((m) => [m, `${dir}/node/maps/${m}`]),
    );
    const reader = `${dir}/pods/reader/mount`, writer = `${dir}/pods/writer/mount`;
    // The kubelet's directories above a target are its own; here they let uid 1000 through.
    for (const p of ["reader", "writer"]) {
      await Deno.mkdir(`${dir}/pods/${p}`, { recursive: true, mode: 0o755 });
    }
    await publishMapVolume({ staging: `${dir}/staging/r`, target: reader, maps, gid: GID });
    await publishMapVolume({ staging: `${dir}/staging/w`, target: writer, maps, gid: GID, writable: true });

    assert.equal(await runProgram(), 2); // XDP_PASS
    assert.equal(await runProgram(), 2);
    assert.deepEqual(await unprivileged(reader, "read", work), { packets: "2" });
    const refused = await unprivileged(reader, "try-write", work);
    assert.equal(refused.wrote, undefined);
    assert.match(String(refused.error), /errno 30|EROFS|EACCES|EPERM/);
    assert.deepEqual(await unprivileged(writer, "drop", work), { dropped: true });
    assert.equal(await runProgram(), 1); // XDP_DROP: the program read the switch
    const ring = await unprivileged(writer, "ring", work);
    assert.deepEqual(ring.records, [
      { len: 64, verdict: 2 },
      { len: 64, verdict: 2 },
      { len: 64, verdict: 1 },
    ]);
    await unpublishMapVolume(reader);
    await unpublishMapVolume(writer);
    assert.deepEqual(await bpffsMountsUnder(`${dir}/pods`), []);
  } finally {
    for (const m of (await bpffsMountsUnder(dir)).reverse()) await run("umount", ["-l", m]);
    await Deno.remove(dir, { recursive: true });
  }
});
