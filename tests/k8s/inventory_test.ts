// The node inventory on a real API server with two node runtimes, each in its own network namespace:
// a program loaded and held by another process (a test child) shows up in the inventories with its
// holder's pid and command; on node-a, where bpfd manages a TCX chain on eth0, an Event names it; it
// disappears when its holder exits. `bpfd list --cluster` as a viewer (bob, bound to
// bpfd-bpfprogram-viewer) shows every node; alice (no binding) is refused.
import assert from "node:assert/strict";
import { TestCluster } from "./_cluster.ts";
import { waitFor } from "../_kube.ts";
import { bytecodePath } from "../_runtime.ts";
import { INVENTORY } from "../../model/inventory.ts";
import { inventoryDocuments, withInventory } from "../../manifests/inventory.ts";

const root = new URL("../..", import.meta.url).pathname;
// deno-lint-ignore no-explicit-any
type Json = any;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}cli/main.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

Deno.test("inventory: someone else's program is listed with its holder, an Event on bpfd's hook, gone with its holder; list --cluster follows RBAC", async (t) => {
  const cluster = await TestCluster.start({
    nodes: [{ name: "node-a" }, { name: "node-b" }],
    inventory: { minWriteSeconds: 1, fullSeconds: 2 },
  });
  let foreign: Deno.ChildProcess | undefined;
  try {
    const inventory = async (node: string): Promise<Json | undefined> => {
      try {
        return await cluster.custom.getClusterCustomObject({
          group: INVENTORY.group,
          version: INVENTORY.version,
          plural: INVENTORY.plural,
          name: node,
        });
      } catch (err) {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      }
    };
    const a = cluster.runtimes.get("node-a")!;

    await t.step("each node writes its inventory", async () => {
      for (const node of ["node-a", "node-b"]) {
        const inv = await waitFor(`${node} inventory`, () => inventory(node), 30000, 250).catch(async (e) => {
          throw new Error(`${e.message}\n${await cluster.logs()}`);
        });
        assert.equal(inv.spec.node, node);
        assert.equal(inv.spec.summary.programs, inv.spec.programs.length + inv.spec.omitted);
      }
    });

    let managedId = 0;
    await t.step("bpfd manages a TCX chain on node-a's eth0", async () => {
      const load = await a.call("load", {
        bytecode: { path: bytecodePath("tc_counter") },
        programs: [{ name: "tc_counter", type: "tcx" }],
        metadata: { team: "net" },
      });
      assert.equal(load.status, 200, JSON.stringify(load.body));
      managedId = load.body.programs[0].id;
      const attach = await a.call("attach", {
        programId: managedId,
        attach: { type: "tcx", iface: "eth0", direction: "ingress", priority: 50 },
      });
      assert.equal(attach.status, 200, JSON.stringify(attach.body));
      const inv = await waitFor(
        "managed program in node-a's inventory",
        async () => {
          const i = await inventory("node-a");
          return i?.spec.programs.find((p: Json) => p.id === managedId) ? i : undefined;
        },
        20000,
        250,
      );
      const p = inv.spec.programs.find((p: Json) => p.id === managedId);
      assert.equal(p.managed, true);
      assert.equal(p.owner.metadata.team, "net");
      assert.equal(p.owner.loadedBy, "anonymous");
      assert.deepEqual(p.attachments.map((x: Json) => [x.kind, x.iface, x.attachType]), [[
        "tcx",
        "eth0",
        "ingress",
      ]]);
    });

    let foreignId = 0;
    await t.step("a program held by another process shows up with its pid and command", async () => {
      foreign = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${root}tests/k8s/_foreign.ts`, `/run/netns/${a.net.ns}`, "eth0"],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = foreign.stdout.getReader();
      const line = new TextDecoder().decode((await reader.read()).value);
      reader.releaseLock();
      foreign.stdout.cancel().catch(() => {});
      foreignId = Number(line.match(/ready (\d+)/)?.[1]);
      assert.ok(foreignId > 0, line);
      const inv = await waitFor(
        "foreign program in node-a's inventory",
        async () => {
          const i = await inventory("node-a");
          const p = i?.spec.programs.find((p: Json) => p.id === foreignId);
          return p?.holders?.length ? i : undefined;
        },
        20000,
        250,
      );
      const p = inv.spec.programs.find((p: Json) => p.id === foreignId);
      assert.equal(p.managed, false);
      assert.equal(p.type, "sched_cls");
      assert.ok(
        p.holders.some((h: Json) => h.pid === foreign!.pid && h.comm === "deno"),
        JSON.stringify(p.holders),
      );
      assert.ok(
        p.attachments.some((x: Json) =>
          x.kind === "tcx" && x.iface === "eth0" && x.attachType === "tcx_ingress"
        ),
        JSON.stringify(p.attachments),
      );
      // Its hook is bpfd's: the chain shows it after bpfd's program (TCX appends), not managed.
      const hook = inv.spec.hooks.find((h: Json) => h.type === "tcx" && h.iface === "eth0");
      assert.deepEqual(
        hook.chain.map((e: Json) => [e.programId, e.managed]).filter(([id]: number[]) =>
          [foreignId, managedId].includes(id)
        ),
        [[managedId, true], [foreignId, false]],
      );
    });

    await t.step("an Event on node-a names it", async () => {
      const ev = await waitFor(
        "UnmanagedProgramOnHook event",
        async () => {
          const list = await cluster.core.listNamespacedEvent({ namespace: "default" });
          return list.items.find((e) =>
            e.reason === "UnmanagedProgramOnHook" && e.involvedObject.name === "node-a" &&
            e.message?.includes(`program ${foreignId} `)
          );
        },
        20000,
        250,
      );
      assert.equal(ev.involvedObject.kind, "Node");
      assert.equal(ev.type, "Warning");
    });

    await t.step(
      "bpfd list --cluster: the viewer sees every node, a user without rights is refused",
      async () => {
        for (const doc of withInventory(inventoryDocuments()).filter((d) => d.kind === "ClusterRole")) {
          await cluster.kube.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(doc) });
        }
        const viewer = {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "ClusterRole",
          metadata: { name: "bpfd-bpfprogram-viewer" },
          rules: [{
            apiGroups: ["bpfd.io"],
            resources: ["bpfprograms", INVENTORY.plural],
            verbs: ["get", "list"],
          }],
        };
        const bind = {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "ClusterRoleBinding",
          metadata: { name: "bob-views" },
          roleRef: {
            apiGroup: "rbac.authorization.k8s.io",
            kind: "ClusterRole",
            name: "bpfd-bpfprogram-viewer",
          },
          subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "bob" }],
        };
        for (const doc of [viewer, bind]) {
          const r = await cluster.kube.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(doc) });
          assert.equal(r.code, 0, r.stderr);
        }
        const bob = await waitFor(
          "bob may list",
          async () => {
            const r = await cli(["list", "--cluster", "--kubeconfig", cluster.kube.kubeconfig("bob")]);
            return r.code === 0 ? r : undefined;
          },
          10000,
          250,
        );
        assert.match(bob.stdout, /^node-a\s/m);
        assert.match(bob.stdout, /^node-b\s/m);
        assert.match(
          bob.stdout,
          new RegExp(
            `^node-a\\s+${foreignId}\\s+tc_counter\\s+sched_cls\\s+no\\s.*deno\\[${foreign!.pid}\\]`,
            "m",
          ),
        );
        const one = await cli([
          "get",
          "--node",
          "node-a",
          String(managedId),
          "--kubeconfig",
          cluster.kube.kubeconfig("bob"),
        ]);
        assert.equal(one.code, 0, one.stderr);
        assert.match(one.stdout, /Managed by bpfd\s+yes/);
        assert.match(one.stdout, /team=net/);
        const alice = await cli(["list", "--cluster", "--kubeconfig", cluster.kube.kubeconfig("alice")]);
        assert.equal(alice.code, 1);
        assert.match(alice.stderr, /refused.*forbidden|forbidden/i);
        const token = await cli([
          "list",
          "--cluster",
          "--server",
          cluster.kube.server,
          "--ca",
          cluster.kube.caFile,
          "--token",
          cluster.kube.users.bob.token,
          "-o",
          "json",
        ]);
        assert.equal(token.code, 0, token.stderr);
        assert.deepEqual(JSON.parse(token.stdout).map((s: Json) => s.node), ["node-a", "node-b"]);
      },
    );

    await t.step("it disappears when its holder exits", async () => {
      foreign!.kill("SIGKILL");
      await foreign!.status;
      foreign = undefined;
      await waitFor(
        "foreign program gone from node-a's inventory",
        async () => {
          const i = await inventory("node-a");
          return i && !i.spec.programs.some((p: Json) => p.id === foreignId);
        },
        20000,
        250,
      );
    });
  } finally {
    if (foreign) {
      foreign.kill("SIGKILL");
      await foreign.status;
    }
    await cluster.stop();
  }
});
