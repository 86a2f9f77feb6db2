import assert from "node:assert/strict";
import { InventoryPublisher } from "../../../runtime/inventory_publish.ts";
import type { InventorySnapshot } from "../../../runtime/inventory.ts";
import { Logger } from "../../../lib/log.ts";
import { type BpfNodeInventorySpec, summarize } from "../../../model/inventory.ts";

function snapshot(ids: number[], intruders: InventorySnapshot["intruders"] = []): InventorySnapshot {
  const programs = ids.map((id) => ({
    id,
    name: `p${id}`,
    type: "xdp",
    tag: "00",
    loadedAt: "",
    uid: 0,
    managed: false,
    mapIds: [],
    attachments: [],
  }));
  const spec: BpfNodeInventorySpec = {
    node: "n",
    observedAt: new Date().toISOString(),
    summary: summarize(programs),
    programs,
    hooks: [],
    omitted: 0,
  };
  return { spec, intruders };
}

function fixture() {
  const state = { ids: [1], intruders: [] as InventorySnapshot["intruders"], fail: false, takes: 0 };
  const written: BpfNodeInventorySpec[] = [];
  const events: string[] = [];
  const api = {
    write(spec: BpfNodeInventorySpec) {
      if (state.fail) return Promise.reject(new Error("connection refused"));
      written.push(spec);
      return Promise.resolve();
    },
    event(e: { key: string }) {
      events.push(e.key);
      return Promise.resolve();
    },
    pods: () => Promise.resolve(new Map()),
  };
  const p = new InventoryPublisher(undefined, api, {
    nodeName: "n",
    minWriteSeconds: 5,
    fullSeconds: 30,
    fingerprint: () => state.ids.join(","),
    take: () => {
      state.takes++;
      return Promise.resolve(snapshot(state.ids, state.intruders));
    },
  }, new Logger("error"));
  return { p, state, written, events };
}

Deno.test("inventory publisher: writes on change only, at most once per minWriteSeconds, the newest state", async () => {
  const { p, state, written } = fixture();
  await p.tick(0);
  assert.equal(written.length, 1);
  await p.tick(1000); // nothing changed: no snapshot, no write
  assert.equal(state.takes, 1);
  for (let t = 1000; t < 5000; t += 500) {
    state.ids = [1, t]; // churn within the interval
    await p.tick(t);
  }
  assert.equal(written.length, 1, "coalesced");
  state.ids = [1, 2, 3];
  await p.tick(5000);
  assert.equal(written.length, 2);
  assert.deepEqual(written[1].programs.map((x) => x.id), [1, 2, 3], "the newest state");
  await p.tick(36_000); // the periodic full snapshot finds nothing new: no write
  assert.equal(state.takes, 3);
  assert.equal(written.length, 2);
});

Deno.test("inventory publisher: an API server away is caught up with after backoff, nothing thrown", async () => {
  const { p, state, written } = fixture();
  state.fail = true;
  await p.tick(0);
  await p.tick(500); // within the backoff
  assert.equal(written.length, 0);
  state.ids = [1, 7];
  state.fail = false;
  await p.tick(10_000);
  assert.equal(written.length, 1);
  assert.deepEqual(written[0].programs.map((x) => x.id), [1, 7]);
});

Deno.test("inventory publisher: one Event per unmanaged program on a hook, again only after it left", async () => {
  const { p, state, events } = fixture();
  state.intruders = [{ hook: "xdp::eth0", programId: 9, name: "x" }];
  state.ids = [1, 9];
  await p.tick(0);
  state.ids = [1, 9, 10];
  await p.tick(6000);
  assert.deepEqual(events, ["xdp::eth0|9"]);
  state.intruders = [];
  state.ids = [1];
  await p.tick(12_000);
  state.intruders = [{ hook: "xdp::eth0", programId: 9, name: "x" }];
  state.ids = [1, 9];
  await p.tick(18_000);
  assert.deepEqual(events, ["xdp::eth0|9", "xdp::eth0|9"]);
});
