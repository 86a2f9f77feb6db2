/**
 * Trace sessions: the time from asking to the first line of the program's own output (a `BEGIN` printf,
 * which bpftrace runs once every probe is attached), through a runtime process's unix socket with
 * `trace` against running `bpftrace` by hand, and the time until a cut session's bpftrace is gone.
 *
 * @module
 */
import { RuntimeProcess } from "../_runtime.ts";
import { ndjson } from "../../cli/trace.ts";
import { type BenchSection, percentiles } from "./node.ts";

const SCRIPT = 'BEGIN { printf("ready\\n"); } tracepoint:syscalls:sys_enter_getppid { @calls = count(); }';

/** Milliseconds from spawning bpftrace by hand to its first "ready" line. */
async function byHand(): Promise<number> {
  const started = performance.now();
  const child = new Deno.Command("bpftrace", {
    args: ["-B", "none", "-e", SCRIPT],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let ms = NaN;
  const guard = setTimeout(() => child.kill("SIGKILL"), 20_000);
  let nudge: ReturnType<typeof setInterval> | undefined;
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    if (chunk.includes("ready")) {
      ms = performance.now() - started;
      child.kill("SIGINT");
      nudge = setInterval(() => child.kill("SIGINT"), 300); // bpftrace 0.17 can miss the first
    }
  }
  await child.status;
  clearTimeout(guard);
  clearInterval(nudge);
  if (Number.isNaN(ms)) throw new Error("bpftrace by hand printed no line within 20 s");
  return ms;
}

/** Milliseconds from the request to the "ready" line; then the caller goes away, and the time until the session is gone. */
async function throughBpfd(rt: RuntimeProcess, client: Deno.HttpClient): Promise<[number, number]> {
  const started = performance.now();
  const abort = new AbortController();
  const res = await fetch("http://bpfd/v1/functions/trace", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ script: SCRIPT, seconds: 30 }),
    client,
    signal: abort.signal,
  });
  let ms = NaN;
  for await (const event of ndjson(res.body!)) {
    if ("line" in event && event.line === "ready") {
      ms = performance.now() - started;
      break;
    }
  }
  const cut = performance.now();
  abort.abort();
  for (;;) {
    const listed = (await rt.call("list", {})).body.programs.filter((p: { session?: unknown }) => p.session);
    if (!listed.length) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const gone = performance.now() - cut;
  // The session's record (and cgroups) go just after its programs: wait, so the runtime is never cut mid-way.
  while ([...Deno.readDirSync(`${rt.dir}/traces`)].length) await new Promise((r) => setTimeout(r, 10));
  return [ms, gone];
}

/** The trace section: p50/p95 over `rounds` sessions each way. */
export async function benchTrace(rounds = 10): Promise<BenchSection> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-bench-trace-" });
  const rt = await RuntimeProcess.start(dir);
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: rt.socket } });
  const hand: number[] = [], bpfd: number[] = [], gone: number[] = [];
  try {
    await byHand();
    await throughBpfd(rt, client); // warm: the function's module, the runtime's first session
    for (let i = 0; i < rounds; i++) {
      hand.push(await byHand());
      const [first, end] = await throughBpfd(rt, client);
      bpfd.push(first);
      gone.push(end);
    }
  } finally {
    client.close();
    await rt.stop("SIGKILL");
    await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true });
  }
  const row = (what: string, samples: number[]) => {
    const { p50, p95 } = percentiles(samples);
    return `| ${what} | ${p50.toFixed(0)} ms | ${p95.toFixed(0)} ms |`;
  };
  return {
    title: "Trace sessions: start to first output line",
    markdown: [
      "| what | p50 | p95 |",
      "| --- | ---: | ---: |",
      row("`bpftrace -e` by hand → first line", hand),
      row("`trace` over the unix socket → first line", bpfd),
      row("caller goes away → session's programs gone from `list`", gone),
    ].join("\n"),
  };
}

if (import.meta.main) {
  const { title, markdown } = await benchTrace(Number(Deno.args[0] ?? 10));
  console.log(`## ${title}\n\n${markdown}`);
}
