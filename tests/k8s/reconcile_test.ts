// functions/reconcile.ts against the real kernel, in-process on a scratch bpffs: converges load + attach,
// is idempotent, repairs drift (link or program gone behind bpfd's back), replaces on a bytecode change,
// unloads on null, and leaves nothing behind when it fails.
import assert from "node:assert/strict";
import { bytecodePath, kernelSnapshot, leftovers, readCounter, startTestRuntime } from "../_runtime.ts";
import { NodeNet } from "./_nodes.ts";
import { BpfdError } from "../../functions/_errors.ts";

Deno.test("reconcile: converge, idempotence, drift repair, spec change, unload, failures", async (t) => {
  const before = kernelSnapshot();
  await using net = await NodeNet.create();
  await using rt = await startTestRuntime();
  const spec = {
    name: "xdp_counter",
    type: "XDP",
    nodeselector: {},
    priority: 0,
    attachpoint: { interface: net.hostIf },
    bytecode: { path: bytecodePath("xdp_counter") },
  };
  const req = { name: "count-all-node1", config: "count-all", spec };
  // deno-lint-ignore no-explicit-any
  const reconcile = (input: unknown): Promise<any> => rt.invoke("reconcile", input);
  const counter = (out: { programs: Record<string, { maps: Record<string, string> }> }) =>
    readCounter(Object.values(out.programs)[0].maps.xdp_packets);

  let first: { programs: Record<string, { linkid?: number }>; changed: boolean; actions: string[] };
  await t.step("loads and attaches; traffic is counted", async () => {
    first = await reconcile(req);
    assert.equal(first.changed, true);
    const ids = Object.keys(first.programs);
    assert.equal(ids.length, 1);
    const p = first.programs[ids[0]] as Record<string, unknown>;
    assert.equal(p.name, "xdp_counter");
    assert.equal(p.type, "XDP");
    assert.deepEqual(p.attachpoint, { interface: net.hostIf });
    assert.ok(String(p.mappinpath).startsWith(`${rt.dir}/fs/`), String(p.mappinpath));
    assert.ok(p.linkid);
    const got = await net.pingHost(5);
    assert.equal(got, 5);
    assert.ok(counter(first as never) >= 5, `counter ${counter(first as never)}`);
    const record = rt.node.state.program(Number(ids[0]))!;
    assert.equal(record.metadata["bpfd.io/owner"], "count-all-node1");
    assert.equal(record.metadata["bpfd.io/config"], "count-all");
  });

  await t.step("a second run changes nothing", async () => {
    const again = await reconcile(req);
    assert.equal(again.changed, false, again.actions.join("; "));
    assert.deepEqual(again.programs, first.programs);
  });

  const xdpOff = async () => {
    const r = await new Deno.Command("ip", { args: ["link", "set", "dev", net.hostIf, "xdp", "off"] })
      .output();
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  };

  await t.step("a program detached behind bpfd's back is attached again", async () => {
    const id = Number(Object.keys(first.programs)[0]);
    await xdpOff();
    const before = counter(first as never);
    await net.pingHost(3);
    assert.equal(counter(first as never), before, "still counting after the detach");
    const out = await reconcile(req);
    assert.equal(out.changed, true);
    assert.deepEqual(Object.keys(out.programs), [String(id)], "same program kept");
    assert.match(out.actions.join("; "), /forgot link .* attached/);
    await net.pingHost(3);
    assert.ok(counter(out) >= before + 3);
    first = out;
  });

  await t.step("a program unloaded behind bpfd's back is loaded again", async () => {
    const id = Number(Object.keys(first.programs)[0]);
    await xdpOff();
    for (const l of rt.node.state.links(id)) await Deno.remove(rt.node.kernel.linkPin(l.id)).catch(() => {});
    await Deno.remove(rt.node.kernel.progPin(id));
    // The kernel frees the program after an RCU grace period.
    for (let i = 0; i < 100 && rt.node.kernel.programAlive(id); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(rt.node.kernel.programAlive(id), false, "the kernel kept the program");
    const out = await reconcile(req);
    assert.equal(out.changed, true);
    const [newId] = Object.keys(out.programs);
    assert.notEqual(newId, String(id));
    assert.match(out.actions.join("; "), new RegExp(`forgot ${id} .*loaded ${newId}`));
    assert.equal(rt.node.state.program(id), undefined);
    first = out;
  });

  await t.step("a changed spec replaces the program", async () => {
    const oldId = Number(Object.keys(first.programs)[0]);
    const out = await reconcile({ ...req, spec: { ...spec, globaldata: { verdict: btoa("\x02\0\0\0") } } });
    const [newId] = Object.keys(out.programs);
    assert.notEqual(Number(newId), oldId);
    assert.equal(rt.node.kernel.programAlive(oldId), false);
    // The new program is loaded first, the old one unloaded last.
    assert.equal(out.actions[0], `loaded ${newId}`);
    assert.equal(out.actions.at(-1), `unloaded ${oldId} (replaced)`);
    assert.match(out.actions.join("; "), new RegExp(`attached ${newId} as link`));
    assert.equal(await net.pingHost(3), 3, "XDP_PASS (2) still passes");
    first = out;
  });

  await t.step("null unloads everything the owner has; a second null changes nothing", async () => {
    const out = await reconcile({ name: req.name, spec: null });
    assert.equal(out.changed, true);
    assert.deepEqual(out.programs, {});
    assert.equal(rt.node.state.programs().length, 0);
    const again = await reconcile({ name: req.name, spec: null });
    assert.equal(again.changed, false);
  });

  await t.step("failures leave nothing behind", async () => {
    const snap = kernelSnapshot();
    await assert.rejects(
      reconcile({ ...req, spec: { ...spec, attachpoint: { interface: "nosuchif0" } } }),
      (e: unknown) => e instanceof BpfdError && /nosuchif0/.test(e.message),
    );
    assert.equal(rt.node.state.programs().length, 0, "the loaded program was not unloaded");
    await assert.rejects(
      reconcile({ ...req, spec: { ...spec, bytecode: { path: "/nonexistent/x.o" } } }),
      (e: unknown) => e instanceof BpfdError && e.status === 404,
    );
    await assert.rejects(
      reconcile({ ...req, spec: { ...spec, name: "no_such_program" } }),
      (e: unknown) => e instanceof BpfdError && e.status === 404 && /no_such_program/.test(e.message),
    );
    await assert.rejects(
      reconcile({ ...req, spec: { ...spec, attachpoint: {} } }),
      (e: unknown) => e instanceof BpfdError && e.status === 400 && /attachpoint\.interface/.test(e.message),
    );
    assert.deepEqual(await leftovers(snap, ["xdp_counter"]), []);
  });

  await t.step("map sharing: a second owner uses the first one's maps", async () => {
    const a = await reconcile(req);
    const tcSpec = {
      name: "tc_counter",
      type: "TC",
      attachpoint: { interface: net.hostIf, direction: "ingress" },
      bytecode: { path: bytecodePath("tc_counter") },
    };
    // The owner must be there first.
    await assert.rejects(
      reconcile({ name: "tc-node1", spec: tcSpec, mapOwner: "nobody-node1" }),
      (e: unknown) => e instanceof BpfdError && e.status === 409,
    );
    const b = await reconcile({ name: "tc-node1", spec: tcSpec, mapOwner: req.name });
    const aRec = rt.node.state.program(Number(Object.keys(a.programs)[0]))!;
    const bRec = rt.node.state.program(Number(Object.keys(b.programs)[0]))!;
    assert.equal(bRec.mapOwnerId, aRec.id);
    assert.equal(bRec.mapPinPath, aRec.mapPinPath);
    await reconcile({ name: "tc-node1", spec: null });
    await reconcile({ name: req.name, spec: null });
  });

  await t.step("the function is served over HTTP with the CRD payload", async () => {
    const res = await rt.call("reconcile", req);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(Object.keys(res.body.programs).length, 1);
    const bad = await rt.call("reconcile", { ...req, spec: { ...spec, type: "Nope" } });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body), /spec\.type/);
    const gone = await rt.call("reconcile", { name: req.name, spec: null });
    assert.equal(gone.status, 200);
  });

  await rt.close();
  assert.deepEqual(await leftovers(before, ["xdp_counter", "tc_counter"]), []);
});

Deno.test("reconcile: a forged owner tag is refused by load and never adopted or reported", async () => {
  const before = kernelSnapshot();
  await using net = await NodeNet.create();
  await using rt = await startTestRuntime();
  const spec = {
    name: "xdp_counter",
    type: "XDP",
    nodeselector: {},
    attachpoint: { interface: net.hostIf },
    bytecode: { path: bytecodePath("xdp_counter") },
  };
  const req = { name: "count-all-node1", config: "count-all", spec };
  const programs = {
    bytecode: { path: bytecodePath("xdp_counter") },
    programs: [{ name: "xdp_counter", type: "xdp" }],
  };

  // A caller of `load` may not put bpfd's own keys on its program.
  const tagged = await rt.call("load", { ...programs, metadata: { "bpfd.io/owner": req.name } });
  assert.equal(tagged.status, 400, JSON.stringify(tagged.body));
  assert.equal(tagged.body.error.field, "metadata");
  assert.equal(rt.node.state.programs().length, 0);

  // A program whose metadata copies reconcile's own exactly (as a runtime before this check let anyone
  // write it) is still not the config's: its record does not say reconcile loaded it for that owner.
  const first = await rt.invoke("reconcile", req);
  const [ownId] = Object.keys(first.programs).map(Number);
  const own = rt.node.state.program(ownId)!;
  assert.equal(own.reconciledFor, req.name);
  const forged = (await rt.call("load", { ...programs, metadata: { app: "forger" } })).body.programs[0].id;
  await rt.node.state.update({
    putPrograms: [{ ...rt.node.state.program(forged)!, metadata: { ...own.metadata } }],
  });
  const again = await rt.invoke("reconcile", req);
  assert.deepEqual(Object.keys(again.programs), [String(ownId)], "the forged program was reported");
  assert.equal(again.changed, false, again.actions.join("; "));

  // With reconcile's own program gone, it loads a new one rather than adopting the forgery.
  await rt.invoke("unload", { programId: ownId });
  const third = await rt.invoke("reconcile", req);
  const [newId] = Object.keys(third.programs).map(Number);
  assert.notEqual(newId, forged);
  assert.ok(third.actions.includes(`loaded ${newId}`), third.actions.join("; "));
  assert.equal(rt.node.state.links(forged).length, 0, "the forged program was attached");
  assert.equal(rt.node.state.program(forged)?.metadata["bpfd.io/owner"], req.name, "left as it was");

  await rt.invoke("reconcile", { name: req.name, spec: null });
  assert.deepEqual(rt.node.state.programs().map((p) => p.id), [forged], "reconcile unloaded a forgery");
  await rt.invoke("unload", { programId: forged });
  await rt.close();
  assert.deepEqual(await leftovers(before, ["xdp_counter"]), []);
});
