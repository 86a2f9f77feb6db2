// Run as a child process by hostile_registry_test.ts: pulls one image with a fresh store and prints the
// outcome and the process's peak resident memory (VmHWM), so that a bomb's cost is measured on its own.
//   deno run -A tests/host/image/_pull_peak.ts URL CACHE_DIR CA_FILE
import { ImageError } from "../../../image/errors.ts";
import { ImageStore } from "../../../image/store.ts";

const [url, cacheDir, caFile] = Deno.args;
const store = new ImageStore({ cacheDir, caFiles: [caFile], timeoutMs: 10_000 });
let code = "ok";
try {
  await store.pull({ url });
} catch (e) {
  code = e instanceof ImageError ? e.code : String(e);
} finally {
  store.close();
}
const hwm = /VmHWM:\s+(\d+) kB/.exec(await Deno.readTextFile("/proc/self/status"))?.[1];
console.log(JSON.stringify({ code, peakBytes: Number(hwm) * 1024 }));
