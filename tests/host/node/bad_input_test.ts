/**
 * Bad input through the HTTP app (`app.request`, no socket): every case answers with a clear status and
 * a body that names the field or carries the errno and verifier log, and leaves nothing in the kernel,
 * the bpffs or the state.
 */
import assert from "node:assert/strict";
import { VethPair } from "../../_netns.ts";
import {
  bytecodePath,
  kernelSnapshot,
  leftovers,
  startTestRuntime,
  type TestRuntime,
} from "../../_runtime.ts";

const XDP = {
  bytecode: { path: bytecodePath("xdp_counter") },
  programs: [{ name: "xdp_counter", type: "xdp" }],
};

async function pins(rt: TestRuntime): Promise<string[]> {
  const found: string[] = [];
  for (const dir of ["progs", "maps", "links"]) {
    for await (const e of Deno.readDir(`${rt.dir}/fs/${dir}`)) found.push(`${dir}/${e.name}`);
  }
  return found;
}

/** Runs `fn` and checks that the kernel, the pins and the state are as they were. */
async function leavesNothing(rt: TestRuntime, fn: () => Promise<void>): Promise<void> {
  const before = kernelSnapshot();
  const pinsBefore = await pins(rt);
  const programsBefore = rt.node.state.programs().length, linksBefore = rt.node.state.links().length;
  await fn();
  assert.deepEqual(
    await leftovers(before, ["xdp_counter", "tc_counter", "unchecked_lookup", "enter_getppid"]),
    [],
  );
  assert.deepEqual(await pins(rt), pinsBefore);
  assert.equal(rt.node.state.programs().length, programsBefore);
  assert.equal(rt.node.state.links().length, linksBefore);
}

Deno.test("bad input: clear errors, nothing left behind", async (t) => {
  await using rt = await startTestRuntime();
  await using net = await VethPair.create();
  const expect = async (name: string, input: unknown, status: number, pattern: RegExp, field?: string) => {
    await leavesNothing(rt, async () => {
      const res = await rt.call(name, input);
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.match(res.body.error.message, pattern);
      if (field) assert.equal(res.body.error.field, field);
    });
  };

  await t.step("unknown function → 404", async () => {
    const res = await rt.call("explode", {});
    assert.equal(res.status, 404);
    assert.match(res.body.error.message, /no function explode/);
  });
  await t.step("body that is not JSON → 400", async () => {
    const res = await rt.app.request("/v1/functions/list", { method: "POST", body: "{nope" });
    assert.equal(res.status, 400);
    assert.match((await res.json()).error.message, /not JSON/);
  });
  await t.step(
    "missing field → 400 naming it",
    () => expect("load", { programs: XDP.programs }, 400, /bytecode/, "bytecode"),
  );
  await t.step(
    "wrong type → 400 naming the nested field",
    () =>
      expect(
        "load",
        { ...XDP, programs: [{ name: "xdp_counter", type: "socket" }] },
        400,
        /programs\.0\.type/,
        "programs.0.type",
      ),
  );
  await t.step("unknown field → 400", () => expect("load", { ...XDP, color: "red" }, 400, /color/));
  await t.step(
    "a path without programs → 400 (only images declare their programs)",
    () => expect("load", { bytecode: XDP.bytecode }, 400, /required with bytecode\.path/, "programs"),
  );
  await t.step(
    "relative object path → 400",
    () =>
      expect(
        "load",
        { ...XDP, bytecode: { path: "bytecode/build/xdp_counter.bpf.o" } },
        400,
        /absolute/,
        "bytecode.path",
      ),
  );
  await t.step(
    "missing object file → 404 with the path",
    () =>
      expect(
        "load",
        { ...XDP, bytecode: { path: "/nonexistent/x.o" } },
        404,
        /\/nonexistent\/x\.o/,
        "bytecode.path",
      ),
  );
  await t.step(
    "a file that is not an object → 400",
    () =>
      expect(
        "load",
        { ...XDP, bytecode: { path: "/etc/hostname" } },
        400,
        /not a BPF object/,
        "bytecode.path",
      ),
  );
  await t.step(
    "program not in the object → 404 naming it",
    () =>
      expect(
        "load",
        { ...XDP, programs: [{ name: "nope", type: "xdp" }] },
        404,
        /program nope not found/,
        "programs.0.name",
      ),
  );
  await t.step(
    "program of another type → 400",
    () =>
      expect(
        "load",
        { ...XDP, programs: [{ name: "xdp_counter", type: "tracepoint" }] },
        400,
        /not a tracepoint program/,
      ),
  );
  await t.step(
    "unknown global variable → 400 naming it",
    () =>
      expect(
        "load",
        { ...XDP, globalData: { nope: "AAAAAA==" } },
        400,
        /no global variable nope/,
        "globalData.nope",
      ),
  );
  await t.step(
    "global of the wrong size → 400",
    () =>
      expect(
        "load",
        { ...XDP, globalData: { verdict: "AA==" } },
        400,
        /4 bytes, the value is 1/,
        "globalData.verdict",
      ),
  );
  await t.step(
    "global data that is not base64 → 400",
    () => expect("load", { ...XDP, globalData: { verdict: "***" } }, 400, /base64/, "globalData.verdict"),
  );
  await t.step(
    "unknown map owner → 404",
    () => expect("load", { ...XDP, mapOwnerId: 99999999 }, 404, /99999999/, "mapOwnerId"),
  );

  await t.step("verifier refusal → 422 with errno and the verifier log", async () => {
    await leavesNothing(rt, async () => {
      const res = await rt.call("load", {
        bytecode: { path: bytecodePath("verifier_reject") },
        programs: [{ name: "unchecked_lookup", type: "xdp" }],
      });
      assert.equal(res.status, 422);
      assert.equal(res.body.error.errno, "EACCES");
      assert.match(res.body.error.verifierLog, /invalid mem access 'map_value_or_null'/);
    });
  });

  const { programs: [program] } = await rt.invoke("load", XDP);
  const xdp = (extra: Record<string, unknown>) => ({
    programId: program.id,
    attach: { type: "xdp", iface: net.hostIf, netns: net.hostNs, ...extra },
  });
  await t.step(
    "attach to an unknown program → 404",
    () => expect("attach", { ...xdp({}), programId: 99999999 }, 404, /program 99999999/, "programId"),
  );
  await t.step(
    "attach as the wrong type → 400",
    () =>
      expect(
        "attach",
        { programId: program.id, attach: { type: "tracepoint", tracepoint: "syscalls/sys_enter_getppid" } },
        400,
        /xdp program/,
        "attach.type",
      ),
  );
  await t.step(
    "unknown interface → 404",
    () => expect("attach", xdp({ iface: "nope0" }), 404, /interface nope0/, "attach.iface"),
  );
  await t.step(
    "unknown namespace → 404",
    () => expect("attach", xdp({ netns: "bpfd-no-such-ns" }), 404, /netns bpfd-no-such-ns/, "attach.netns"),
  );
  await t.step(
    "namespace path that escapes /run/netns → 400",
    () => expect("attach", xdp({ netns: "../../etc/passwd" }), 400, /netns/, "attach.netns"),
  );
  await t.step(
    "namespace path that is not a namespace → 400",
    () => expect("attach", xdp({ netns: "/etc/passwd" }), 400, /netns/, "attach.netns"),
  );
  await t.step(
    "interface name with a slash → 400",
    () => expect("attach", xdp({ iface: "../x" }), 400, /interface name/, "attach.iface"),
  );
  await t.step(
    "unknown attach type → 400 listing the types",
    () =>
      expect(
        "attach",
        { programId: program.id, attach: { type: "lsm" } },
        400,
        /must be one of xdp, tc/,
        "attach.type",
      ),
  );
  await t.step(
    "priority out of range → 400",
    () => expect("attach", xdp({ priority: 5000 }), 400, /priority/, "attach.priority"),
  );
  await t.step("unknown tracepoint → 404", async () => {
    const { programs: [tp] } = await rt.invoke("load", {
      bytecode: { path: bytecodePath("tracepoint_counter") },
      programs: [{ name: "enter_getppid", type: "tracepoint" }],
    });
    await expect(
      "attach",
      { programId: tp.id, attach: { type: "tracepoint", tracepoint: "nope/nope" } },
      404,
      /nope\/nope/,
    );
    await expect(
      "attach",
      { programId: tp.id, attach: { type: "tracepoint", tracepoint: "../../x" } },
      400,
      /group\/name/,
    );
    await rt.invoke("unload", { programId: tp.id });
  });
  await t.step(
    "detach of an unknown link → 404",
    () => expect("detach", { linkId: 424242 }, 404, /link 424242/, "linkId"),
  );
  await t.step(
    "unload of an unknown program → 404",
    () => expect("unload", { programId: 424242 }, 404, /program 424242/, "programId"),
  );
  await t.step(
    "get of a program that is nowhere → 404",
    () => expect("get", { programId: 0xfffffff0 }, 404, /not found/),
  );
  await t.step(
    "metadata key with forbidden characters → 400",
    () => expect("load", { ...XDP, metadata: { "a b": "c" } }, 400, /metadata/),
  );

  await t.step(
    "an XDP program on an interface where someone else's XDP program is → 409, theirs untouched",
    async () => {
      await net.exec(
        net.hostNs,
        "ip",
        "link",
        "set",
        "dev",
        net.hostIf,
        "xdpgeneric",
        "obj",
        bytecodePath("xdp_counter"),
        "sec",
        "xdp",
      );
      try {
        await expect(
          "attach",
          xdp({ mode: "skb" }),
          409,
          /already has an XDP program that bpfd does not own/,
        );
        assert.match(await net.exec(net.hostNs, "ip", "link", "show", net.hostIf), /prog\/xdp id/);
      } finally {
        await net.exec(net.hostNs, "ip", "link", "set", "dev", net.hostIf, "xdpgeneric", "off");
      }
    },
  );
  await rt.invoke("unload", { programId: program.id });
});
