import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { CounterMap, family, HistogramMap } from "../../../runtime/prometheus.ts";

Deno.test("prometheus text: counters by label set, cumulative histogram buckets, escaped values; a parser reads it", () => {
  const calls = new CounterMap();
  calls.inc({ function: "load", status: "200" });
  calls.inc({ function: "load", status: "200" });
  calls.inc({ function: 'we"ird\\name\n', status: "500" }, 3);
  const latency = new HistogramMap([0.01, 0.1]);
  latency.observe({ function: "list" }, 0.005);
  latency.observe({ function: "list" }, 0.05);
  latency.observe({ function: "list" }, 2);
  const text = family("c_total", "counter", "Calls.\nSecond line", calls.samples()) + "\n" +
    family("h_seconds", "histogram", "Latency.", latency.samples());
  assert.match(text, /^c_total\{function="load",status="200"\} 2$/m);
  assert.match(text, /^c_total\{function="we\\"ird\\\\name\\n",status="500"\} 3$/m);
  assert.match(text, /^# HELP c_total Calls.\\nSecond line$/m);
  assert.match(text, /^h_seconds_bucket\{function="list",le="0.01"\} 1$/m);
  assert.match(text, /^h_seconds_bucket\{function="list",le="0.1"\} 2$/m);
  assert.match(text, /^h_seconds_bucket\{function="list",le="\+Inf"\} 3$/m);
  assert.match(text, /^h_seconds_sum\{function="list"\} 2.055$/m);
  assert.match(text, /^h_seconds_count\{function="list"\} 3$/m);
  const parsed = parsePrometheusTextFormat(text) as Array<{ name: string; type: string; metrics: unknown[] }>;
  assert.deepEqual(parsed.map((f) => [f.name, f.type]), [["c_total", "COUNTER"], ["h_seconds", "HISTOGRAM"]]);
  assert.equal(parsed[0].metrics.length, 2);
});
