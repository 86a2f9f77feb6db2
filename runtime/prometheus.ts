/**
 * The Prometheus text exposition format (version 0.0.4), for the node runtime: counters and histograms
 * kept in maps, and families written with escaped HELP and label values. The runtime writes it itself
 * because prom-client costs it about 7 MiB of resident memory (BENCHMARKS.md, "Inventory and metrics");
 * the controller, which has no such budget, uses prom-client.
 *
 * @example
 * ```ts
 * const calls = new CounterMap();
 * calls.inc({ function: "load", status: "200" });
 * family("bpfd_function_calls_total", "counter", "Function calls.", calls.samples());
 * ```
 * @module
 */

/** Label names to values. */
export type Labels = Record<string, string>;

/** One sample: its labels, value and an optional name suffix (`_bucket`, `_sum`, `_count`). */
export interface Sample {
  labels: Labels;
  value: number;
  suffix?: string;
}

/** The content type of the text format. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
const escapeHelp = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

function number(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** One metric family as text: HELP, TYPE, then one line per sample. */
export function family(
  name: string,
  type: "counter" | "gauge" | "histogram",
  help: string,
  samples: Sample[],
) {
  const lines = [`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`];
  for (const s of samples) {
    const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",");
    lines.push(`${name}${s.suffix ?? ""}${labels ? `{${labels}}` : ""} ${number(s.value)}`);
  }
  return lines.join("\n") + "\n";
}

const keyOf = (labels: Labels) => JSON.stringify(labels);

/** Counters by label set. */
export class CounterMap {
  #values = new Map<string, { labels: Labels; value: number }>();

  /** Adds `by` (default 1) to the counter of `labels`. */
  inc(labels: Labels, by = 1): void {
    const key = keyOf(labels);
    const entry = this.#values.get(key);
    if (entry) entry.value += by;
    else this.#values.set(key, { labels, value: by });
  }

  /** The samples, in the order label sets first appeared. */
  samples(): Sample[] {
    return [...this.#values.values()].map(({ labels, value }) => ({ labels, value }));
  }
}

/** Histograms by label set, with cumulative buckets. */
export class HistogramMap {
  #values = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();

  constructor(readonly buckets: number[]) {}

  /** Records one observation for `labels`. */
  observe(labels: Labels, value: number): void {
    const key = keyOf(labels);
    let entry = this.#values.get(key);
    if (!entry) {
      this.#values.set(
        key,
        entry = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 },
      );
    }
    this.buckets.forEach((le, i) => {
      if (value <= le) entry.counts[i]++;
    });
    entry.sum += value;
    entry.count++;
  }

  /** `_bucket` samples (with `le`, +Inf last), `_sum` and `_count` for each label set. */
  samples(): Sample[] {
    return [...this.#values.values()].flatMap(({ labels, counts, sum, count }) => [
      ...this.buckets.map((le, i) => ({
        labels: { ...labels, le: String(le) },
        value: counts[i],
        suffix: "_bucket",
      })),
      { labels: { ...labels, le: "+Inf" }, value: count, suffix: "_bucket" },
      { labels, value: sum, suffix: "_sum" },
      { labels, value: count, suffix: "_count" },
    ]);
  }
}
