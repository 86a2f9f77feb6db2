// BpfPolicy at admission, on a real API server with real tokens: bpfd deployed with `deploy()`, its
// webhooks served by a controller process; the policy table (tests/unit/policy/_cases.ts) applied with
// `kubectl apply` as each user agrees with the evaluator and `bpfd policy check`, refusals name the rule
// and the field and leave an Event; a forged requested-by is overwritten; malformed policies are refused
// naming the field, and a policy naming an unknown group is admitted with a warning.
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { KUBECTL, startKube, waitFor } from "../../_kube.ts";
import { CASES, TEAM_POLICY } from "../../unit/policy/_cases.ts";
import { deployWithWebhook, tableUsers } from "./_policy.ts";
import type { ControllerProcess } from "../_cluster.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

async function kubectlAs(kubeconfig: string, args: string[], stdin?: string) {
  const out = await new Deno.Command(KUBECTL, {
    args: ["--kubeconfig", kubeconfig, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = out.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const r = await out.output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

const configDoc = (name: string, spec: unknown, annotations?: Record<string, string>) =>
  JSON.stringify({
    apiVersion: "bpfd.io/v1alpha1",
    kind: "BpfProgramConfig",
    metadata: { name, ...(annotations ? { annotations } : {}) },
    spec: { nodeselector: { matchLabels: { none: "none" } }, ...(spec as Json) },
  });

Deno.test("admission: kubectl apply is refused by BpfPolicy naming rule and field; the table agrees", async (t) => {
  const kube = await startKube();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-admission-" });
  let ctl: ControllerProcess | undefined;
  try {
    ctl = await deployWithWebhook(kube, dir);
    const users = await tableUsers(kube, dir);
    const admin = kube.kubeconfig();
    const custom = kube.kubeConfig().makeApiClient(k8s.CustomObjectsApi);

    await t.step("the default policy is deployed; the table's policy replaces it", async () => {
      const d = await kubectlAs(admin, ["get", "bpfpolicy", "bpfd-default", "-o", "json"]);
      assert.equal(d.code, 0, d.stderr);
      const del = await kubectlAs(admin, ["delete", "bpfpolicy", "bpfd-default"]);
      assert.equal(del.code, 0, del.stderr);
      const r = await kubectlAs(admin, ["apply", "-f", "-"], JSON.stringify(TEAM_POLICY));
      assert.equal(r.code, 0, r.stderr);
      // The controller's watch has it when carol is refused by "no rule" rather than by the default's.
      await waitFor(
        "policy watched",
        async () => {
          const probe = await kubectlAs(
            users.alice,
            ["apply", "--dry-run=server", "-f", "-"],
            configDoc("probe", CASES[0].spec),
          );
          return probe.code === 0;
        },
        20000,
        300,
      );
    });

    await t.step("every case of the table: allowed or refused as the evaluator says", async () => {
      for (const c of CASES) {
        const r = await kubectlAs(users[c.as], ["apply", "-f", "-"], configDoc(c.name, c.spec));
        assert.equal(r.code === 0, c.allowed, `${c.name}: ${r.stderr}`);
        if (!c.allowed) {
          assert.match(r.stderr, /denied the request/, c.name);
          if (c.rule) {
            assert.ok(r.stderr.includes(c.rule) && r.stderr.includes(c.field!), `${c.name}: ${r.stderr}`);
          }
        }
      }
    });

    await t.step("an admitted config records its requester; a forged one is overwritten", async () => {
      const cfg = await custom.getClusterCustomObject({
        group: "bpfd.io",
        version: "v1alpha1",
        plural: "bpfprogramconfigs",
        name: "alice-xdp-eth0-100",
      }) as Json;
      assert.deepEqual(JSON.parse(cfg.metadata.annotations["bpfd.io/requested-by"]), {
        user: "alice",
        groups: ["system:authenticated"],
      });
      const forged = { "bpfd.io/requested-by": JSON.stringify({ user: "admin", groups: ["bpfd-admins"] }) };
      const r = await kubectlAs(
        users.alice,
        ["apply", "-f", "-"],
        configDoc("alice-forged", CASES[0].spec, forged),
      );
      assert.equal(r.code, 0, r.stderr);
      const got = await custom.getClusterCustomObject({
        group: "bpfd.io",
        version: "v1alpha1",
        plural: "bpfprogramconfigs",
        name: "alice-forged",
      }) as Json;
      assert.equal(JSON.parse(got.metadata.annotations["bpfd.io/requested-by"]).user, "alice");
    });

    await t.step("an update is checked against the user who makes it", async () => {
      // bob may not change alice's config to a priority only alice's rule... bob's rule allows XDP anywhere
      // but not on veth interfaces; carol has no rule at all.
      const spec = { ...CASES[0].spec, priority: 300 };
      const carol = await kubectlAs(users.carol, ["apply", "-f", "-"], configDoc("alice-xdp-eth0-100", spec));
      assert.notEqual(carol.code, 0);
      assert.match(carol.stderr, /no BpfPolicy rule allows user carol/);
      const alice = await kubectlAs(users.alice, ["apply", "-f", "-"], configDoc("alice-xdp-eth0-100", spec));
      assert.equal(alice.code, 0, alice.stderr);
    });

    await t.step("a refusal leaves an Event naming user, rule and field", async () => {
      const core = kube.kubeConfig().makeApiClient(k8s.CoreV1Api);
      const ev = await waitFor(
        "PolicyDenied event",
        async () => {
          const list = await core.listNamespacedEvent({ namespace: "default" });
          return list.items.find((e) =>
            e.reason === "PolicyDenied" && e.involvedObject.name === "alice-xdp-eth1"
          );
        },
        10000,
        200,
      );
      assert.match(ev.message!, /alice.*team\/xdp-eth0.*spec\.attachpoint\.interface/);
      const log = await Deno.readTextFile(`${dir}/controller.log`);
      assert.match(
        log,
        /"msg":"policy refused".*"user":"alice".*"rule":"team\/xdp-eth0".*"field":"spec\.priority"/,
      );
    });

    await t.step(
      "malformed policies are refused naming the field; an unknown group is a warning",
      async () => {
        const policy = (rules: unknown[]) =>
          JSON.stringify({
            apiVersion: "bpfd.io/v1alpha1",
            kind: "BpfPolicy",
            metadata: { name: "p" },
            spec: { rules },
          });
        const refused = async (rules: unknown[], message: RegExp, by: string) => {
          const r = await kubectlAs(admin, ["apply", "-f", "-"], policy(rules));
          assert.notEqual(r.code, 0, by);
          assert.match(r.stderr, message, by);
        };
        await refused(
          [{ name: "r", subjects: [{ kind: "Robot", name: "x" }] }],
          /spec\.rules\.subjects\.kind: Unsupported value: "Robot"/,
          "the CRD schema",
        );
        await refused(
          [{ name: "r", subjects: [{ kind: "ServiceAccount", name: "x" }] }],
          /spec\.rules\[0\]\.subjects\[0\]\.namespace: namespace is required/,
          "the webhook",
        );
        await refused(
          [{ name: "r", subjects: [{ kind: "User", name: "u" }], interfaces: ["/([/"] }],
          /spec\.rules\[0\]\.interfaces\[0\]/,
          "the webhook: a regular expression",
        );
        const warned = await kubectlAs(
          admin,
          ["apply", "-f", "-"],
          policy([{ name: "r", subjects: [{ kind: "Group", name: "no-such-team" }], programTypes: ["XDP"] }]),
        );
        assert.equal(warned.code, 0, warned.stderr);
        assert.match(warned.stderr, /Warning: .*no-such-team/);
      },
    );

    await t.step(
      "with the webhook down, configs are refused (Fail) and policies still apply (Ignore)",
      async () => {
        await ctl!.kill("SIGKILL");
        const r = await kubectlAs(users.alice, ["apply", "-f", "-"], configDoc("alice-down", CASES[0].spec));
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /failed calling webhook/);
        const p = await kubectlAs(
          admin,
          ["apply", "-f", "-"],
          JSON.stringify({ ...TEAM_POLICY, metadata: { name: "team-2" } }),
        );
        assert.equal(p.code, 0, p.stderr);
      },
    );
  } catch (err) {
    const log = await Deno.readTextFile(`${dir}/controller.log`).catch(() => "");
    console.error(log.split("\n").slice(-30).join("\n"));
    throw err;
  } finally {
    await ctl?.kill("SIGKILL");
    await kube.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
