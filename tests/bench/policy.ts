/**
 * BpfPolicy's cost: one decision of the evaluator with 1 and 100 rules; the admission webhook's answer
 * with 100 rules, in-process and over TLS on loopback (what the API server adds to an apply); and on a
 * node, `load` + `attach` + `unload` of a real program with no policy against a 100-rule policy.
 *
 * @module
 */
import { compilePolicy } from "../../policy/evaluate.ts";
import type { BpfPolicy, PolicyRule } from "../../model/policy.ts";
import { serveWebhook, webhookApp } from "../../controller/webhook.ts";
import { Logger } from "../../lib/log.ts";
import { issueNodeCertificate } from "../../deploy/tls.ts";
import { freePort } from "../_kube.ts";
import { bytecodePath, startTestRuntime } from "../_runtime.ts";
import { NodeNet } from "../k8s/_nodes.ts";
import { type BenchSection, percentiles } from "./node.ts";
import type { ProgramRecord } from "../../model/schemas.ts";

/** A policy of `n` rules, each for another user; the benchmark's user is allowed by the last one. */
export function policyOf(n: number, user = "bench"): BpfPolicy {
  const rules: PolicyRule[] = Array.from({ length: n }, (_, i) => ({
    name: `r${i}`,
    subjects: [{ kind: "User", name: i === n - 1 ? user : `user-${i}` }],
    programTypes: ["XDP", "TC"],
    interfaces: ["eth0", "/^veth[0-9]+$/", "/^bk[0-9]+n[0-9]+$/"],
    priority: { min: 10 },
    registries: ["quay.io/team"],
    bytecodePaths: ["/"],
  }));
  return { apiVersion: "bpfd.io/v1alpha1", kind: "BpfPolicy", metadata: { name: "bench" }, spec: { rules } };
}

function loop(n: number, fn: () => void): number {
  const start = performance.now();
  for (let i = 0; i < n; i++) fn();
  return (performance.now() - start) / n;
}

const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;

/** The section. */
export async function benchPolicy(): Promise<BenchSection> {
  const rows: string[] = [];
  const who = { user: "bench", groups: ["system:authenticated"] };
  const req = {
    type: "xdp" as const,
    iface: "veth12",
    priority: 100,
    bytecode: { image: "quay.io/team/x:v1" },
  };
  for (const n of [1, 100]) {
    const p = compilePolicy([policyOf(n)]);
    loop(2000, () => p.decide(req, who));
    rows.push(`| evaluator: one decision, ${n} rule(s) | ${us(loop(20000, () => p.decide(req, who)))} | |`);
  }

  const policy = compilePolicy([policyOf(100)]);
  const app = webhookApp({ policy: () => policy, log: new Logger("error") });
  const body = JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "u",
      operation: "CREATE",
      userInfo: { username: "bench", groups: ["system:authenticated"] },
      object: {
        metadata: { name: "c", annotations: { "bpfd.io/requested-by": JSON.stringify(who) } },
        spec: {
          name: "x",
          type: "XDP",
          priority: 100,
          attachpoint: { interface: "veth12" },
          bytecode: { imageurl: "quay.io/team/x:v1" },
        },
      },
    },
  });
  const inProcess: number[] = [];
  for (let i = 0; i < 600; i++) {
    const t = performance.now();
    const r = await app.request("/validate/bpfprogramconfigs", { method: "POST", body });
    await r.json();
    if (i >= 100) inProcess.push(performance.now() - t);
  }
  const ip = percentiles(inProcess);
  rows.push(`| webhook answer (validate, 100 rules), in-process | ${us(ip.p50)} | ${us(ip.p95)} |`);

  const dir = await Deno.makeTempDir({ prefix: "bpfd-bench-policy-" });
  const abort = new AbortController();
  try {
    const { ca, cert, key } = await issueNodeCertificate(["127.0.0.1"], [], 1);
    await Deno.writeTextFile(`${dir}/tls.crt`, cert);
    await Deno.writeTextFile(`${dir}/tls.key`, key);
    const port = freePort();
    await serveWebhook(app, {
      listen: `127.0.0.1:${port}`,
      certFile: `${dir}/tls.crt`,
      keyFile: `${dir}/tls.key`,
      signal: abort.signal,
    });
    const client = Deno.createHttpClient({ caCerts: [ca] });
    const tls: number[] = [];
    for (let i = 0; i < 400; i++) {
      const t = performance.now();
      const r = await fetch(`https://127.0.0.1:${port}/validate/bpfprogramconfigs`, {
        method: "POST",
        body,
        client,
      });
      await r.json();
      if (i >= 50) tls.push(performance.now() - t);
    }
    client.close();
    const p = percentiles(tls);
    rows.push(`| webhook round trip over TLS (kept-alive), 100 rules | ${us(p.p50)} | ${us(p.p95)} |`);
  } finally {
    abort.abort();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  rows.push(...await nodeCalls());
  return {
    title: "BpfPolicy: evaluator, admission webhook, node-side check",
    markdown: ["| what | p50 | p95 |", "| --- | ---: | ---: |", ...rows].join("\n"),
  };
}

/** load + attach (XDP on a veth in a namespace of its own) + unload, without and with a 100-rule policy. */
async function nodeCalls(): Promise<string[]> {
  await using net = await NodeNet.create(200 + (Deno.pid % 50));
  await using rt = await startTestRuntime();
  const ctx = () => rt.node.ctxFor({ user: "bench", via: "in-process", groups: [] });
  const { invoke } = await import("../../functions/_define.ts");
  const { load } = await import("../../functions/load.ts");
  const { attach } = await import("../../functions/attach.ts");
  const { unload } = await import("../../functions/unload.ts");
  const one = async () => {
    const t = performance.now();
    const l = await invoke(load, {
      bytecode: { path: bytecodePath("xdp_counter") },
      programs: [{ name: "xdp_counter", type: "xdp" }],
    }, ctx());
    const id = l.programs[0].id;
    await invoke(attach, { programId: id, attach: { type: "xdp", iface: net.hostIf, priority: 100 } }, ctx());
    await invoke(unload, { programId: id }, ctx());
    return performance.now() - t;
  };
  const policy = compilePolicy([policyOf(100)]);
  const rows: string[] = [];
  const samples = { none: [] as number[], policy: [] as number[] };
  // Interleaved, so that drift of the machine hits both alike.
  for (let i = 0; i < 60; i++) {
    for (const mode of ["none", "policy"] as const) {
      rt.node.policy = mode === "policy" ? { current: () => policy, trusts: () => false } : undefined;
      const ms = await one();
      if (i >= 10) samples[mode].push(ms);
    }
  }
  // The check alone, as a load and an attach make it (two load checks, one attach check).
  rt.node.policy = { current: () => policy, trusts: () => false };
  const { enforceAttach, enforceLoad } = await import("../../functions/_policy.ts");
  const record = rt.node.state.programs()[0] ??
    { type: "xdp", bytecode: { path: bytecodePath("xdp_counter") } } as unknown as ProgramRecord;
  const bytecode = { path: bytecodePath("xdp_counter") };
  const programs = [{ name: "xdp_counter", type: "xdp" as const }];
  const checks: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t = performance.now();
    await enforceLoad(ctx(), bytecode, { programs });
    await enforceLoad(ctx(), bytecode, { programs, signer: null });
    enforceAttach(ctx(), record, { type: "xdp", iface: net.hostIf, priority: 100 } as never);
    if (i >= 200) checks.push(performance.now() - t);
  }
  rt.node.policy = undefined;
  const c = percentiles(checks);
  rows.push(`| node: the checks of one load + attach alone, 100-rule policy | ${us(c.p50)} | ${us(c.p95)} |`);
  for (const mode of ["none", "policy"] as const) {
    const p = percentiles(samples[mode]);
    rows.push(
      `| node: load + attach + unload, ${mode === "none" ? "no policy" : "100-rule policy"} | ${
        p.p50.toFixed(2)
      } ms | ${p.p95.toFixed(2)} ms |`,
    );
  }
  return rows;
}
