/**
 * `/metrics` of a runtime process (bpfStats on): parsed with a Prometheus text-format parser, the XDP
 * program's run count moves with real pings on a veth between namespaces the test makes, calls are
 * counted by function and status with latency histograms, a load the verifier refuses is counted by
 * errno, and programs are counted by type and managed or not.
 */
import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { VethPair } from "../../_netns.ts";
import { bytecodePath, RuntimeProcess } from "../../_runtime.ts";

// deno-lint-ignore no-explicit-any
type Family = { name: string; type: string; metrics: any[] };

let lastText = "";

async function scrape(rt: RuntimeProcess): Promise<Map<string, Family>> {
  const res = await rt.fetch("/metrics");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  lastText = await res.text();
  const families = parsePrometheusTextFormat(lastText) as Family[];
  return new Map(families.map((f) => [f.name, f]));
}

function value(f: Family | undefined, labels: Record<string, string>): number | undefined {
  const m = f?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return m === undefined ? undefined : Number(m.value ?? m.count);
}

Deno.test("metrics: parse as Prometheus text; run counts move with pings; calls, latency, failures by errno", async () => {
  await using net = await VethPair.create();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-metrics-" });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ bpfStats: true }));
  const rt = await RuntimeProcess.start(dir, ["--config", `${dir}/config.json`]);
  try {
    const load = await rt.call("load", {
      bytecode: { path: bytecodePath("xdp_counter") },
      programs: [{ name: "xdp_counter", type: "xdp" }],
    });
    assert.equal(load.status, 200, JSON.stringify(load.body));
    const id = String(load.body.programs[0].id);
    const attach = await rt.call("attach", {
      programId: Number(id),
      attach: { type: "xdp", iface: net.hostIf, netns: net.hostNs },
    });
    assert.equal(attach.status, 200, JSON.stringify(attach.body));
    const refused = await rt.call("load", {
      bytecode: { path: bytecodePath("verifier_reject") },
      programs: [{ name: "unchecked_lookup", type: "xdp" }],
    });
    assert.equal(refused.status, 422, JSON.stringify(refused.body));

    const before = await scrape(rt);
    assert.equal(value(before.get("bpfd_bpf_stats_enabled"), {}), 1);
    const runs0 = value(before.get("bpfd_program_runs_total"), { id, managed: "true" }) ?? -1;
    assert.ok(runs0 >= 0, "the program has a run counter");
    assert.equal(await net.ping(20), 20);
    const after = await scrape(rt);
    const runs1 = value(after.get("bpfd_program_runs_total"), { id, managed: "true" })!;
    assert.ok(runs1 >= runs0 + 20, `runs ${runs0} → ${runs1} after 20 pings`);
    assert.ok(value(after.get("bpfd_program_run_seconds_total"), { id })! > 0);

    assert.ok(value(after.get("bpfd_programs"), { type: "xdp", managed: "true" })! >= 1);
    assert.ok(value(after.get("bpfd_maps"), {})! >= 1);
    assert.ok(value(after.get("bpfd_map_memory_bytes"), {})! > 0);
    assert.equal(value(after.get("bpfd_function_calls_total"), { function: "load", status: "200" }), 1);
    assert.equal(value(after.get("bpfd_function_calls_total"), { function: "load", status: "422" }), 1);
    assert.equal(value(after.get("bpfd_function_calls_total"), { function: "attach", status: "200" }), 1);
    assert.equal(after.get("bpfd_function_duration_seconds")?.type, "HISTOGRAM");
    // The parser keeps a histogram's buckets but not its labels: its count is read from the text.
    assert.ok(after.get("bpfd_function_duration_seconds")!.metrics.every((m) => m.buckets["+Inf"]));
    assert.match(lastText, /^bpfd_function_duration_seconds_count\{function="attach"\} 1$/m);
    assert.equal(
      value(after.get("bpfd_kernel_failures_total"), { function: "load", errno: refused.body.error.errno }),
      1,
    );
    assert.equal((await rt.call("unload", { programId: Number(id) })).status, 200);
  } finally {
    await rt.stop();
    await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
