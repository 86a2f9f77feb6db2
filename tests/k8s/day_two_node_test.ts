/**
 * Day-two changes on one node (functions/reconcile.ts in-process, real kernel, real traffic): a priority
 * change is a `modify` (same program, counter kept, no ping lost), an attach-point change moves the link
 * (same program), a bytecode change loads the new program before the old one goes (maps new or kept),
 * a reload held back by the roll-out (`allowReload: false`) waits while the other changes are made, and on
 * TCX a reload is make-before-break under traffic.
 *
 * @module
 */
import assert from "node:assert/strict";
import { bytecodePath, kernelSnapshot, leftovers, readCounter, startTestRuntime } from "../_runtime.ts";
import { NodeNet } from "./_nodes.ts";

type Out = {
  programs: Record<string, { maps: Record<string, string>; attachpoint: Record<string, unknown> }>;
  changed: boolean;
  actions: string[];
  waiting?: string;
};

Deno.test("reconcile makes the smallest change: modify, move, make-before-break reload, held reload", async (t) => {
  const before = kernelSnapshot();
  await using net = await NodeNet.create();
  await using net2 = await NodeNet.create();
  await using rt = await startTestRuntime();
  const spec = {
    name: "xdp_counter",
    type: "XDP",
    priority: 50,
    attachpoint: { interface: net.hostIf },
    bytecode: { path: bytecodePath("xdp_counter") },
  };
  const req = { name: "count-node1", config: "count", spec };
  const reconcile = (input: unknown): Promise<Out> => rt.invoke("reconcile", input) as Promise<Out>;
  const only = (out: Out) => {
    const [id] = Object.keys(out.programs);
    return { id: Number(id), counter: readCounter(out.programs[id].maps.xdp_packets), p: out.programs[id] };
  };
  let cur = await reconcile(req);
  assert.equal(await net.pingHost(5), 5);

  await t.step(
    "a priority change modifies in place while pings run: same program, counter kept, no loss",
    async () => {
      const { id, counter } = only(cur);
      assert.ok(counter >= 5);
      const pings = net.pingHost(200);
      await new Promise((r) => setTimeout(r, 300));
      const out = await reconcile({ ...req, spec: { ...spec, priority: 10 } });
      assert.equal(await pings, 200, "pings lost during the change");
      assert.equal(only(out).id, id, "reloaded");
      assert.ok(only(out).counter >= counter + 200, `counter ${only(out).counter}`);
      assert.equal(out.actions.length, 1, out.actions.join("; "));
      assert.match(out.actions[0], /^modified link \d+ of \d+ \(priority\)$/);
      assert.equal(rt.node.state.links(id)[0].attach.type, "xdp");
      assert.equal((rt.node.state.links(id)[0].attach as { priority: number }).priority, 10);
      const same = await reconcile({ ...req, spec: { ...spec, priority: 10 } });
      assert.equal(same.changed, false, same.actions.join("; "));
      cur = out;
    },
  );

  await t.step(
    "an attach-point change moves the link: same program, maps kept, traffic counted there",
    async () => {
      const { id, counter } = only(cur);
      const out = await reconcile({
        ...req,
        spec: { ...spec, priority: 10, attachpoint: { interface: net2.hostIf } },
      });
      assert.equal(only(out).id, id, "reloaded");
      assert.match(out.actions.join("; "), /^attached \d+ as link \d+; detached link \d+ of \d+ \(moved\)$/);
      assert.deepEqual(only(out).p.attachpoint, { interface: net2.hostIf });
      await net.pingHost(3);
      assert.equal(only(out).counter, counter, "still counting on the old interface");
      assert.equal(await net2.pingHost(3), 3);
      assert.ok(only(out).counter >= counter + 3);
      cur = out;
    },
  );

  const moved = { ...spec, priority: 10, attachpoint: { interface: net2.hostIf } };
  await t.step(
    "a bytecode change with mapreuse: Keep loads the new program first and keeps the maps",
    async () => {
      const { id, counter } = only(cur);
      const next = { ...moved, mapreuse: "Keep", globaldata: { verdict: btoa("\x02\0\0\0") } };
      const out = await reconcile({ ...req, spec: next });
      const now = only(out);
      assert.notEqual(now.id, id);
      assert.deepEqual(out.actions[0], `loaded ${now.id} (maps of ${id} kept)`);
      assert.equal(out.actions.at(-1), `unloaded ${id} (replaced)`);
      assert.equal(rt.node.kernel.programAlive(id), false);
      assert.ok(now.counter >= counter, `counter reset: ${now.counter} < ${counter}`);
      assert.equal(await net2.pingHost(3), 3);
      assert.ok(only(out).counter >= counter + 3);
      cur = out;
    },
  );

  await t.step("a bytecode change with the default (New) gives new maps", async () => {
    assert.ok(only(cur).counter > 0);
    // The same object under another path is another bytecode source.
    const copy = await Deno.makeTempFile({ suffix: ".bpf.o" });
    await Deno.copyFile(bytecodePath("xdp_counter"), copy);
    const out = await reconcile({ ...req, spec: { ...moved, bytecode: { path: copy } } }).finally(() =>
      Deno.remove(copy)
    );
    assert.notEqual(Object.keys(out.programs)[0], Object.keys(cur.programs)[0]);
    assert.equal(only(out).counter, 0);
    cur = out;
  });

  await t.step("a held reload waits; the order change is made meanwhile", async () => {
    const { id } = only(cur);
    const out = await reconcile({ ...req, spec: { ...moved, priority: 20 }, allowReload: false });
    // (moved's bytecode is the original path again: a reload is due)
    assert.equal(only(out).id, id);
    assert.match(out.waiting ?? "", /waits/);
    assert.match(out.actions.join("; "), /modified link .* \(priority\)/);
    const go = await reconcile({ ...req, spec: { ...moved, priority: 20 } });
    assert.notEqual(only(go).id, id);
    assert.equal(go.waiting, undefined);
  });

  await t.step(
    "on TCX a bytecode change is make-before-break: the new program runs before the old goes",
    async () => {
      const tcx = {
        name: "tc_counter",
        type: "TCX",
        attachpoint: { interface: net.hostIf, direction: "ingress" },
        bytecode: { path: bytecodePath("tc_counter") },
        mapreuse: "Keep",
      };
      const tcReq = { name: "tcx-node1", config: "tcx", spec: tcx };
      const first = await reconcile(tcReq);
      const [oldId] = Object.keys(first.programs);
      const pings = net.pingHost(300);
      await new Promise((r) => setTimeout(r, 500));
      const out = await reconcile({ ...tcReq, spec: { ...tcx, globaldata: { verdict: btoa("\0\0\0\0") } } });
      assert.equal(await pings, 300, "pings were lost during the reload");
      const [newId] = Object.keys(out.programs);
      assert.notEqual(newId, oldId);
      assert.equal(out.actions.length, 3, out.actions.join("; "));
      assert.equal(out.actions[0], `loaded ${newId} (maps of ${oldId} kept)`);
      assert.match(out.actions[1], new RegExp(`^attached ${newId} as link \\d+$`));
      assert.equal(out.actions[2], `unloaded ${oldId} (replaced)`);
      assert.ok(readCounter(out.programs[newId].maps.tc_packets) >= 300, "the counter was not kept");
      await reconcile({ name: tcReq.name, spec: null });
    },
  );

  await reconcile({ name: req.name, spec: null });
  await rt.close();
  assert.deepEqual(await leftovers(before, ["xdp_counter", "tc_counter"]), []);
});
