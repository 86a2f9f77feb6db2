// The CRDs: the committed YAML equals what crds/generate.ts makes from the zod schemas; the zod schemas
// and the real API server agree on what is valid (the seed's example is; broken specs are refused with a
// message naming the field); status is a subresource; kubectl shows readable columns.
import assert from "node:assert/strict";
import { loadAllYaml } from "@kubernetes/client-node";
import { renderCrds } from "../../crds/generate.ts";
import { BpfProgramConfig, BpfProgramConfigSpec, selectorMatches } from "../../crds/schema.ts";
import { startKube, waitFor } from "../_kube.ts";

const crdsDir = new URL("../../crds/", import.meta.url).pathname;
const seedYaml = await Deno.readTextFile(`${crdsDir}examples/xdp-pass-all-nodes.yaml`);

Deno.test("crds: committed YAML equals the output of the zod schemas (deno task crds)", async () => {
  const rendered = renderCrds();
  assert.equal(rendered.size, 4);
  for (const [name, text] of rendered) {
    const committed = await Deno.readTextFile(`${crdsDir}${name}`);
    assert.equal(committed, text, `crds/${name} is stale: run \`deno task crds\``);
  }
});

Deno.test("crds: the zod schema accepts the seed's example and names what is wrong in broken ones", () => {
  const [seed] = loadAllYaml(seedYaml) as unknown[];
  const parsed = BpfProgramConfig.parse(seed);
  assert.equal(parsed.spec.type, "XDP");
  assert.equal(parsed.spec.attachpoint?.interface, "eth0");
  assert.deepEqual(parsed.spec.nodeselector, {});

  const base = parsed.spec;
  const bad = (spec: unknown) => {
    const r = BpfProgramConfigSpec.safeParse(spec);
    assert.ok(!r.success, `accepted ${JSON.stringify(spec)}`);
    return r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
  };
  assert.match(
    bad({ ...base, attachpoint: {} }),
    /attachpoint\.interface: XDP programs need attachpoint\.interface/,
  );
  assert.match(bad({ ...base, bytecode: {} }), /exactly one of imageurl and path/);
  assert.match(bad({ ...base, bytecode: { imageurl: "x", path: "/y.o" } }), /exactly one/);
  assert.match(bad({ ...base, type: "Socket" }), /type/);
  assert.match(bad({ ...base, type: "TC", attachpoint: { interface: "eth0" } }), /attachpoint\.direction/);
  assert.match(
    bad({ ...base, attachpoint: { interface: "eth0", proceedon: ["shot"] } }),
    /shot is not a XDP action/,
  );
  assert.match(bad({ ...base, attachpoint: { interface: "eth0", tracepoint: "a/b" } }), /does not apply/);
  assert.match(bad({ ...base, priority: 1001 }), /priority/);
  // Every program type has a valid form.
  const ok = [
    { type: "TC", attachpoint: { interface: "eth0", direction: "ingress", proceedon: ["pipe", "ok"] } },
    { type: "TCX", attachpoint: { interface: "eth0", direction: "egress" } },
    { type: "Tracepoint", attachpoint: { tracepoint: "syscalls/sys_enter_openat" } },
    { type: "Kprobe", attachpoint: { functionname: "do_unlinkat", offset: 0 } },
    {
      type: "Uprobe",
      attachpoint: { target: "/usr/lib/x86_64-linux-gnu/libc.so.6", functionname: "malloc" },
    },
    { type: "Fentry", attachpoint: { functionname: "do_unlinkat" } },
    { type: "Fexit", attachpoint: {} },
  ];
  for (const o of ok) {
    const r = BpfProgramConfigSpec.safeParse({ ...base, ...o, bytecode: { path: "/x.o" } });
    assert.ok(r.success, `${JSON.stringify(o)}: ${r.success ? "" : r.error.message}`);
  }
});

Deno.test("crds: label selectors match like Kubernetes'", () => {
  const labels = { role: "edge", zone: "a" };
  assert.ok(selectorMatches({}, labels));
  assert.ok(selectorMatches(undefined, labels));
  assert.ok(selectorMatches({ matchLabels: { role: "edge" } }, labels));
  assert.ok(!selectorMatches({ matchLabels: { role: "core" } }, labels));
  assert.ok(
    selectorMatches({ matchExpressions: [{ key: "zone", operator: "In", values: ["a", "b"] }] }, labels),
  );
  assert.ok(
    !selectorMatches({ matchExpressions: [{ key: "zone", operator: "NotIn", values: ["a"] }] }, labels),
  );
  assert.ok(selectorMatches({ matchExpressions: [{ key: "gpu", operator: "DoesNotExist" }] }, labels));
  assert.ok(!selectorMatches({ matchExpressions: [{ key: "gpu", operator: "Exists" }] }, labels));
});

Deno.test("crds: the real API server takes the CRDs, the seed's example, and refuses broken specs", async (t) => {
  const kube = await startKube();
  try {
    await t.step("CRDs apply, are established and structural", async () => {
      const r = await kube.kubectl(["apply", "-f", crdsDir]);
      assert.equal(r.code, 0, r.stderr);
      for (const name of ["bpfprogramconfigs.bpfd.io", "bpfprograms.bpfd.io"]) {
        await waitFor(`${name} established`, async () => {
          const g = await kube.kubectl(["get", "crd", name, "-o", "json"]);
          const crd = JSON.parse(g.stdout);
          const conds = crd.status?.conditions ?? [];
          assert.ok(
            !conds.some((c: { type: string; status: string }) =>
              c.type === "NonStructuralSchema" && c.status === "True"
            ),
            `${name} is not structural: ${JSON.stringify(conds)}`,
          );
          return conds.some((c: { type: string; status: string }) =>
            c.type === "Established" && c.status === "True"
          );
        });
      }
    });

    await t.step("the seed's example is valid as written", async () => {
      const r = await waitFor(
        "seed example applied",
        async () => {
          const r = await kube.kubectl(["apply", "-f", "-"], { stdin: seedYaml });
          if (
            r.code !== 0 && /could not find the requested resource|no matches for kind/.test(r.stderr)
          ) return false;
          return r;
        },
        20000,
        250,
      );
      assert.equal(r.code, 0, r.stderr);
      const g = await kube.kubectl(["get", "bpfprogramconfig", "xdp-pass-all-nodes", "-o", "json"]);
      const obj = JSON.parse(g.stdout);
      assert.deepEqual(obj.spec, {
        name: "pass",
        type: "XDP",
        nodeselector: {},
        priority: 0,
        attachpoint: { interface: "eth0" },
        bytecode: { imageurl: "quay.io/bpfd-bytecode/xdp_pass:latest" },
      });
      BpfProgramConfig.parse(obj);
    });

    await t.step("kubectl get shows readable columns", async () => {
      const r = await kube.kubectl(["get", "bpfprogramconfigs"]);
      assert.equal(r.code, 0, r.stderr);
      const [head, row] = r.stdout.trim().split("\n");
      assert.match(head, /^NAME\s+TYPE\s+PROGRAM\s+NODES\s+LOADED\s+FAILING\s+STATUS\s+AGE$/);
      assert.match(row, /^xdp-pass-all-nodes\s+XDP\s+pass\s+/);
      const wide = await kube.kubectl(["get", "bpc", "-o", "wide"]);
      assert.match(wide.stdout.split("\n")[0], /PRIORITY\s+ATTACH/);
      assert.match(wide.stdout, /xdp-pass-all-nodes\s+XDP\s+pass\s+0\s+eth0/);
    });

    await t.step("broken specs are refused by the server with a message naming the field", async () => {
      const apply = (spec: Record<string, unknown>) =>
        kube.kubectl(["apply", "-f", "-"], {
          stdin: JSON.stringify({
            apiVersion: "bpfd.io/v1alpha1",
            kind: "BpfProgramConfig",
            metadata: { name: "broken" },
            spec,
          }),
        });
      const base = {
        name: "pass",
        type: "XDP",
        attachpoint: { interface: "eth0" },
        bytecode: { path: "/x.o" },
      };
      let r = await apply({ ...base, type: "XDPP" });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /spec\.type: Unsupported value: "XDPP": supported values: "XDP", "TC"/);
      r = await apply({ ...base, priority: 5000 });
      assert.notEqual(r.code, 0);
      assert.match(
        r.stderr,
        /spec\.priority: Invalid value: 5000: spec\.priority in body should be less than or equal to 1000/,
      );
      r = await apply({ ...base, attachpoint: {} });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /spec\.attachpoint\.interface: Required value/);
      r = await apply({ ...base, bytecode: {} });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /spec\.bytecode\.(imageurl|path): Required value/);
      r = await apply({ ...base, bytecode: { path: "/x.o", imageurl: "r/x:1" } });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /spec\.bytecode/);
      r = await apply({ ...base, attachpoint: { interface: "eth0", proceedon: ["shot"] } });
      assert.notEqual(r.code, 0);
      assert.match(
        r.stderr,
        /spec\.attachpoint\.proceedon: Unsupported value: "shot": supported values: "aborted"/,
      );
      r = await apply({ ...base, attachpoint: undefined });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /spec\.attachpoint: Required value|missing required field "attachpoint"/);
      r = await apply({ ...base, type: "TC" });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /spec\.attachpoint\.direction: Required value/);
      const g = await kube.kubectl(["get", "bpfprogramconfig", "broken"]);
      assert.notEqual(g.code, 0, "a broken config was stored");
    });

    await t.step(
      "status is a subresource: a spec update does not change status, and vice versa",
      async () => {
        const patch = JSON.stringify({ status: { nodes: { selected: 1, loaded: 0, failing: 1 } } });
        let r = await kube.kubectl(["patch", "bpc", "xdp-pass-all-nodes", "--type=merge", "-p", patch]);
        assert.equal(r.code, 0, r.stderr);
        r = await kube.kubectl(["get", "bpc", "xdp-pass-all-nodes", "-o", "json"]);
        assert.equal(JSON.parse(r.stdout).status, undefined, "status written through the main resource");
        // The status subresource takes it (raw request: kubectl 1.20 has no --subresource).
        const obj = JSON.parse(r.stdout);
        obj.status = { nodes: { selected: 1, loaded: 1, failing: 0 } };
        const res = await fetch(
          `${kube.server}/apis/bpfd.io/v1alpha1/bpfprogramconfigs/xdp-pass-all-nodes/status`,
          {
            method: "PUT",
            client: Deno.createHttpClient({ caCerts: [kube.caPem] }),
            headers: { authorization: `Bearer ${kube.admin.token}`, "content-type": "application/json" },
            body: JSON.stringify(obj),
          },
        );
        assert.equal(res.status, 200, await res.text());
        r = await kube.kubectl(["get", "bpc", "xdp-pass-all-nodes", "-o", "jsonpath={.status.nodes.loaded}"]);
        assert.equal(r.stdout, "1");
      },
    );
  } finally {
    await kube.stop();
  }
});
