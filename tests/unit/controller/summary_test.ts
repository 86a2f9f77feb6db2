import assert from "node:assert/strict";
import { summarize } from "../../../controller/summary.ts";
import type { BpfProgram, BpfProgramConfig } from "../../../crds/schema.ts";

const cfg = (status?: BpfProgramConfig["status"]): BpfProgramConfig => ({
  apiVersion: "bpfd.io/v1alpha1",
  kind: "BpfProgramConfig",
  metadata: { name: "c", generation: 3 },
  spec: {
    name: "p",
    type: "XDP",
    attachpoint: { interface: "eth0" },
    bytecode: { imageurl: "r/x:latest" },
  },
  ...(status ? { status } : {}),
});

const bp = (node: string, ok: boolean, digest?: string): BpfProgram => ({
  apiVersion: "bpfd.io/v1alpha1",
  kind: "BpfProgram",
  metadata: { name: `c-${node}` },
  spec: { node, programs: { "1": { attachpoint: {}, maps: {}, ...(digest ? { digest } : {}) } } },
  status: {
    conditions: [{
      type: "Loaded",
      status: ok ? "True" : "False",
      reason: ok ? "bpfdLoaded" : "bpfdNotLoaded",
      message: ok ? "ok" : "pull secret bpfd/x not found",
      lastTransitionTime: "2026-12-01T00:00:00Z",
    }],
  },
});

Deno.test("summary: counts and names failing nodes, groups nodes by the digest they run", () => {
  const nodes = ["a", "b", "c"].map((name) => ({ name, labels: {} }));
  const mine = [bp("a", true, "sha256:1"), bp("b", true, "sha256:2"), bp("c", false, "sha256:1")];
  const { status, cond } = summarize(cfg(), { selected: nodes, mine });
  assert.deepEqual(status.nodes, { selected: 3, loaded: 2, failing: 1 });
  assert.deepEqual(status.failingNodes, ["c"]);
  assert.deepEqual(status.digests, { "sha256:1": ["a", "c"], "sha256:2": ["b"] });
  assert.match(cond.message, /failing on 1: c: pull secret bpfd\/x not found/);
  assert.equal(status.observedGeneration, 3);
});

Deno.test("summary: digests no longer run are dropped; path bytecode has none", () => {
  const nodes = [{ name: "a", labels: {} }];
  const { status } = summarize(cfg({ digests: { "sha256:old": ["a"] } }), {
    selected: nodes,
    mine: [bp("a", true)],
  });
  assert.equal(status.digests, undefined);
  assert.equal(summarize(cfg(), { selected: nodes, mine: [bp("a", true)] }).cond.status, "True");
});
