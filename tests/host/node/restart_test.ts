/**
 * The runtime as a real process on a unix socket: kill -9 it with a program attached, traffic is still
 * counted, start it again, it shows the same programs and links, and unload works. Half-done work
 * found at start (pins never recorded, an interrupted attach) is cleaned up.
 */
import assert from "node:assert/strict";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, kernelSnapshot, leftovers, readCounter, RuntimeProcess } from "../../_runtime.ts";
import * as bpf from "../../../ffi/libbpf.ts";
import { BpfObject } from "../../../ffi/object.ts";
import { BpfAttachType } from "../../../ffi/abi.ts";
import { ifNameToIndex, inNetns } from "../../../ffi/libc.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-restart-" });
  try {
    await fn(dir);
  } finally {
    await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("kill -9 with a program attached: traffic still counted, restart shows it, unload works", async () => {
  const before = kernelSnapshot();
  await using net = await VethPair.create();
  await withDir(async (dir) => {
    let rt = await RuntimeProcess.start(dir);
    try {
      const load = await rt.call("load", {
        bytecode: { path: bytecodePath("xdp_counter") },
        programs: [{ name: "xdp_counter", type: "xdp" }],
        metadata: { purpose: "restart-test" },
      });
      assert.equal(load.status, 200, JSON.stringify(load.body));
      const program = load.body.programs[0];
      const attach = await rt.call("attach", {
        programId: program.id,
        attach: { type: "xdp", iface: net.hostIf, netns: net.hostNs },
      });
      assert.equal(attach.status, 200, JSON.stringify(attach.body));
      const listedBefore = (await rt.call("list", {})).body;

      await rt.stop("SIGKILL");
      const counter = program.program.maps.xdp_packets;
      const counted = readCounter(counter);
      assert.equal(await net.ping(3), 3);
      assert.ok(readCounter(counter) >= counted + 3, "the program kept counting while the runtime was dead");

      rt = await RuntimeProcess.start(dir);
      const listedAfter = (await rt.call("list", {})).body;
      const strip = (l: { programs: Array<{ kernel: unknown }> }) =>
        l.programs.map(({ kernel: _, ...rest }) => rest);
      assert.deepEqual(strip(listedAfter), strip(listedBefore));
      const unload = await rt.call("unload", { programId: program.id });
      assert.equal(unload.status, 200, JSON.stringify(unload.body));
      assert.doesNotMatch(await net.exec(net.hostNs, "ip", "link", "show", net.hostIf), /prog\/xdp/);
    } finally {
      await rt.stop("SIGKILL");
    }
  });
  assert.deepEqual(await leftovers(before, ["xdp_counter"]), []);
});

Deno.test("start-up recovery removes pins nobody recorded and rolls back an interrupted attach", async () => {
  const before = kernelSnapshot();
  await using net = await VethPair.create();
  await withDir(async (dir) => {
    // A first run loads and attaches, then dies.
    let rt = await RuntimeProcess.start(dir);
    const { body } = await rt.call("load", {
      bytecode: { path: bytecodePath("xdp_counter") },
      programs: [{ name: "xdp_counter", type: "xdp" }],
    });
    const program = body.programs[0];
    await rt.stop("SIGKILL");

    // Simulate a crash between the kernel step and the state write: a loaded-and-pinned program that the
    // state never recorded, and an attach recorded as pending whose link is pinned.
    const orphan = BpfObject.open(bytecodePath("tc_counter"));
    let orphanId: number;
    try {
      orphan.load();
      const fd = orphan.programFd("tc_counter");
      orphanId = bpf.programInfo(fd).id;
      bpf.objPin(fd, `${dir}/fs/progs/${orphanId}`);
    } finally {
      orphan.close();
    }
    const state = JSON.parse(await Deno.readTextFile(`${dir}/state.json`));
    const nsPath = `/run/netns/${net.hostNs}`;
    const linkFd = bpf.withFd(
      bpf.objGet(`${dir}/fs/progs/${program.id}`),
      (fd) =>
        inNetns(
          nsPath,
          () => bpf.linkCreate("test attach", fd, ifNameToIndex(net.hostIf), BpfAttachType.XDP, 0),
        ),
    );
    bpf.objPin(linkFd, `${dir}/fs/links/${state.nextLinkId}`);
    bpf.closeFd(linkFd);
    state.links.push({
      id: state.nextLinkId,
      programId: program.id,
      attach: {
        type: "xdp",
        iface: net.hostIf,
        netns: net.hostNs,
        priority: 50,
        proceedOn: ["pass"],
        mode: "native",
      },
      createdAt: new Date().toISOString(),
      createdBy: { user: "test", via: "test" },
      pending: true,
    });
    state.nextLinkId++;
    await Deno.writeTextFile(`${dir}/state.json`, JSON.stringify(state));
    assert.match(await net.exec(net.hostNs, "ip", "link", "show", net.hostIf), /prog\/xdp/);

    rt = await RuntimeProcess.start(dir);
    try {
      const ready = await (await rt.fetch("/readyz")).json();
      const actions = ready.findings.map((f: { what: string; action: string }) => `${f.what}: ${f.action}`);
      assert.ok(actions.includes("link: attach was interrupted; rolled back"), actions.join("; "));
      assert.ok(actions.includes("program pin: load was never recorded; unloaded"), actions.join("; "));
      assert.doesNotMatch(await net.exec(net.hostNs, "ip", "link", "show", net.hostIf), /prog\/xdp/);
      const listed = (await rt.call("list", {})).body.programs;
      assert.deepEqual(listed.map((p: { id: number }) => p.id), [program.id]);
      assert.deepEqual(listed[0].links, []);
      await Deno.lstat(`${dir}/fs/progs/${orphanId!}`).then(
        () => assert.fail("orphan pin still there"),
        () => {},
      );
      assert.equal((await rt.call("unload", { programId: program.id })).status, 200);
    } finally {
      await rt.stop("SIGKILL");
    }
  });
  assert.deepEqual(await leftovers(before, ["xdp_counter", "tc_counter"]), []);
});
