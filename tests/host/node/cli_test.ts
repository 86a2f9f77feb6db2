/**
 * The `bpfd` CLI against a runtime process on a unix socket: load, attach, list (table and JSON), get,
 * detach, unload; usage mistakes exit 2 with the usage; kernel refusals print the verifier log.
 */
import assert from "node:assert/strict";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, RuntimeProcess } from "../../_runtime.ts";

const cli = new URL("../../../cli/main.ts", import.meta.url).pathname;

async function bpfd(socket: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, "--socket", socket, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code, out: new TextDecoder().decode(stdout), err: new TextDecoder().decode(stderr) };
}

Deno.test("bpfd CLI: load, attach, list, get, detach, unload over the unix socket", async () => {
  await using net = await VethPair.create();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-cli-" });
  const rt = await RuntimeProcess.start(dir);
  try {
    const s = rt.socket;
    const load = await bpfd(
      s,
      "-o",
      "json",
      "load",
      "--path",
      bytecodePath("xdp_counter"),
      "--program",
      "xdp_counter:xdp",
      "--metadata",
      "owner=cli-test",
      "--global",
      "verdict=02000000",
    );
    assert.equal(load.code, 0, load.err);
    const id = JSON.parse(load.out).programs[0].id;

    const attach = await bpfd(
      s,
      "attach",
      String(id),
      "xdp",
      "--iface",
      net.hostIf,
      "--netns",
      net.hostNs,
      "--priority",
      "10",
    );
    assert.equal(attach.code, 0, attach.err);
    const linkId = Number(attach.out.match(/as link (\d+)/)?.[1]);
    assert.ok(linkId > 0, attach.out);

    const list = await bpfd(s, "list");
    assert.equal(list.code, 0, list.err);
    const [header, row] = list.out.trim().split("\n");
    assert.match(header, /^ID\s+NAME\s+TYPE\s+BPFD\s+LOADED AT\s+LOADED BY\s+LINKS\s+METADATA$/);
    assert.match(
      row,
      new RegExp(
        `^${id}\\s+xdp_counter\\s+xdp\\s+yes\\s+\\S+\\s+uid:0\\s+${linkId}: xdp ${net.hostIf}@${net.hostNs} prio 10\\s+owner=cli-test$`,
      ),
    );

    const all = await bpfd(s, "list", "--all", "-o", "json");
    assert.ok(JSON.parse(all.out).programs.some((p: { id: number }) => p.id === id));

    const get = await bpfd(s, "get", String(id));
    assert.match(get.out, /Managed by bpfd\s+yes/);
    assert.match(get.out, /Maps\s+xdp_packets → /);
    assert.match(get.out, /Loaded by\s+uid:0 \(unix-socket\)/);

    assert.equal((await bpfd(s, "detach", String(linkId))).code, 0);
    const unload = await bpfd(s, "unload", String(id));
    assert.equal(unload.code, 0, unload.err);
    assert.match(unload.out, new RegExp(`unloaded program ${id}`));

    const refused = await bpfd(
      s,
      "load",
      "--path",
      bytecodePath("verifier_reject"),
      "--program",
      "unchecked_lookup:xdp",
    );
    assert.equal(refused.code, 1);
    assert.match(refused.err, /the kernel refused to load unchecked_lookup: EACCES/);
    assert.match(refused.err, /verifier log:\n[\s\S]*map_value_or_null/);

    const usage = await bpfd(s, "attach");
    assert.equal(usage.code, 2);
    assert.match(usage.err, /attach needs PROGRAM_ID/);
    assert.match(usage.err, /^usage: bpfd/m);
  } finally {
    await rt.stop();
    await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bpfd CLI: a runtime that is not there is a clear error", async () => {
  const r = await bpfd("/nonexistent/bpfd.sock", "list");
  assert.equal(r.code, 1);
  assert.match(r.err, /cannot reach the runtime at \/nonexistent\/bpfd\.sock/);
});

Deno.test("bpfd CLI: list shows each hook's chain in order; modify reorders it in place", async () => {
  await using net = await VethPair.create();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-cli-" });
  const rt = await RuntimeProcess.start(dir);
  try {
    const s = rt.socket;
    const links: number[] = [];
    const ids: number[] = [];
    for (const priority of ["20", "10"]) {
      const load = await bpfd(
        s,
        "-o",
        "json",
        "load",
        "--path",
        bytecodePath("tc_counter"),
        "--program",
        "tc_counter:tcx",
      );
      ids.push(JSON.parse(load.out).programs[0].id);
      const attach = await bpfd(
        s,
        "-o",
        "json",
        "attach",
        String(ids.at(-1)),
        "tcx",
        "--iface",
        net.hostIf,
        "--netns",
        net.hostNs,
        "--direction",
        "ingress",
        "--priority",
        priority,
      );
      assert.equal(attach.code, 0, attach.err);
      links.push(JSON.parse(attach.out).linkId);
    }
    const order = async () => {
      const list = await bpfd(s, "list");
      assert.equal(list.code, 0, list.err);
      assert.match(
        list.out,
        new RegExp(
          `tc:${net.hostNs}:${net.hostIf}:ingress \\(tcx links\\)\\nPOS\\s+PROGRAM\\s+NAME\\s+PRIORITY`,
        ),
      );
      return [...list.out.matchAll(/^\d+\s+(\d+)\s+tc_counter\s+(\d+)\s+\S+\s+link \d+$/gm)].map((
        m,
      ) => [Number(m[1]), Number(m[2])]);
    };
    assert.deepEqual(await order(), [[ids[1], 10], [ids[0], 20]]);
    const modify = await bpfd(s, "modify", String(links[0]), "--priority", "5");
    assert.equal(modify.code, 0, modify.err);
    assert.match(modify.out, new RegExp(`modified link ${links[0]} of program ${ids[0]}: tcx .* prio 5`));
    assert.deepEqual(await order(), [[ids[0], 5], [ids[1], 10]]);
    for (const id of ids) assert.equal((await bpfd(s, "unload", String(id))).code, 0);
  } finally {
    await rt.stop();
    await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true });
  }
});
