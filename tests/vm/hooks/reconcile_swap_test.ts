/**
 * Make-before-break on a shared hook (the VM tier: dispatchers need extension programs): a bytecode change
 * of one program that `reconcile` placed in an XDP (and a tc) dispatcher chain loads the new program,
 * attaches it into the chain, and only then unloads the old one, while continuous traffic loses no packet
 * and the chain's other programs keep their programs, extensions and counters. The runtime is a process in
 * the test's network namespace (the node's `eth0` is found by name there, as on a node).
 * @module
 */
import assert from "node:assert/strict";
import { TcActionValue } from "../../../ffi/abi.ts";
import { capTest } from "../../_caps.ts";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, kernelSnapshot, leftovers, RuntimeProcess } from "../../_runtime.ts";
import { chainCounts, type ChainProgram, loadChain, u32 } from "../../host/hooks/_chain.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const OWNER = "swap-node-a";
/** Pings during the swap, one every 10 ms (the swap takes a few seconds under emulation). */
const PINGS = 1000;

/** A runtime process in `net`'s host namespace; unloads what it holds and goes when disposed. */
async function runtimeIn(net: VethPair): Promise<RuntimeProcess & AsyncDisposable & { invoke: Invoke }> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-vm-swap-" });
  let rt: RuntimeProcess;
  try {
    rt = await RuntimeProcess.start(dir, [], { netns: net.hostNs });
  } catch (err) {
    await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
  const invoke: Invoke = async (name, input) => {
    const { status, body } = await rt.call(name, input);
    if (status >= 300) throw new Error(`${name}: ${status} ${JSON.stringify(body)}`);
    return body;
  };
  return Object.assign(rt, {
    invoke,
    async [Symbol.asyncDispose]() {
      try {
        const { programs } = await invoke("list", {});
        for (const p of programs.filter((p: Json) => p.managed).reverse()) {
          await invoke("unload", { programId: p.id }).catch((e) => console.error("cleanup:", e));
        }
      } finally {
        await rt.stop();
        await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

type Invoke = (name: string, input: unknown) => Promise<Json>;

/** The one program `reconcile` reports, as a ChainProgram (its own maps) with `tag`. */
function reported(out: Json, tag: number): ChainProgram {
  const ids = Object.keys(out.programs);
  assert.equal(ids.length, 1, JSON.stringify(out));
  return { id: Number(ids[0]), tag, maps: out.programs[ids[0]].maps };
}

/** Packets each program counted for its own tag, in its own maps. */
const counted = (programs: ChainProgram[]) => programs.map((p) => chainCounts([p]).get(p.tag)!);

for (const kind of ["xdp", "tc"] as const) {
  capTest({
    name: `${kind} dispatcher: reconcile's bytecode change swaps the new program into the chain before the ` +
      `old one goes; no packet lost, the other programs untouched`,
    needs: ["freplace"],
  }, async () => {
    const before = kernelSnapshot();
    await using net = await VethPair.create();
    await using rt = await runtimeIn(net);
    const name = kind === "xdp" ? "chain_xdp" : "chain_tc";
    // tc programs pass with TC_ACT_PIPE, which the default proceed-on goes on after; XDP's pass does.
    const verdict = kind === "tc" ? { verdict: u32(TcActionValue.pipe) } : {};
    const others = await loadChain(
      rt,
      kind,
      [1, 3].map((tag) => ({ tag, ...(kind === "tc" ? { verdict: TcActionValue.pipe } : {}) })),
    );
    const attach = { type: kind, iface: net.hostIf, ...(kind === "tc" ? { direction: "ingress" } : {}) };
    for (const [i, p] of others.entries()) {
      await rt.invoke("attach", { programId: p.id, attach: { ...attach, priority: i ? 30 : 10 } });
    }
    const spec = (tag: number) => ({
      name,
      type: kind === "xdp" ? "XDP" : "TC",
      priority: 20,
      attachpoint: { interface: net.hostIf, ...(kind === "tc" ? { direction: "ingress" } : {}) },
      bytecode: { path: bytecodePath(name) },
      globaldata: { tag: u32(tag), ...verdict },
    });
    const old = reported(await rt.invoke("reconcile", { name: OWNER, spec: spec(2) }), 2);
    const chain = async () => {
      const { hooks } = await rt.invoke("list", { type: kind });
      assert.equal(hooks.length, 1);
      return hooks[0].chain.map((e: Json) => ({ id: e.programId, slot: e.slotProgramId }));
    };
    const was = await chain();
    assert.deepEqual(was.map((e: Json) => e.id), [others[0].id, old.id, others[1].id]);
    assert.equal(await net.ping(3), 3);

    // The bytecode change (other global data: a reload) while pings run.
    const counts = counted([...others, old]);
    const traffic = net.startPing(PINGS, 0.01);
    const started = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    const out = await rt.invoke("reconcile", { name: OWNER, spec: spec(4) });
    const took = performance.now() - started;
    const { transmitted, received } = await traffic.result;
    console.log(
      `${kind}: the swap ended ${took.toFixed(0)} ms into ${transmitted} pings, ${received} replies`,
    );
    assert.ok(took < PINGS * 10 - 500, "the swap ended after the traffic: make PINGS larger");
    const fresh = reported(out, 4);
    assert.notEqual(fresh.id, old.id);

    // Make-before-break, as the node did it: loaded, attached into the chain, then the old one unloaded;
    // the hook never held one program only (no "detached ... (the hook holds one program)").
    assert.equal(out.actions.length, 3, JSON.stringify(out.actions));
    assert.match(out.actions[0], new RegExp(`^loaded ${fresh.id}$`));
    assert.match(out.actions[1], new RegExp(`^attached ${fresh.id} as link \\d+$`));
    assert.equal(out.actions[2], `unloaded ${old.id} (replaced)`);
    assert.equal(received, transmitted, `lost ${transmitted - received} of ${transmitted} during the swap`);

    // The new program sits where the old one sat; the others are the same programs in the same slots'
    // extensions (moved, not reloaded), and saw every packet.
    const now = await chain();
    assert.deepEqual(now.map((e: Json) => e.id), [others[0].id, fresh.id, others[1].id]);
    for (const i of [0, 2]) assert.deepEqual(now[i], was[i], "another program of the chain changed");
    const after = counted(others);
    for (const [i, p] of others.entries()) {
      assert.ok(
        after[i] - counts[i] >= transmitted,
        `tag ${p.tag} saw ${after[i] - counts[i]} of ${transmitted} packets`,
      );
    }
    const seen = counted([fresh])[0];
    assert.equal(await net.ping(3), 3);
    assert.ok(counted([fresh])[0] - seen >= 3, "the new program runs in the chain");

    await rt.invoke("reconcile", { name: OWNER, spec: null });
    for (const p of [...others].reverse()) await rt.invoke("unload", { programId: p.id });
    assert.deepEqual(await leftovers(before, [name, `${kind}_dispatcher`]), []);
  });
}
