/**
 * Reads the JUnit reports of the test tiers and prints one closing line, `tests: N passed, N failed`,
 * so that a run of several `deno test` invocations ends with a single total.
 *
 * @example
 * ```sh
 * deno run -A tests/summary.ts /tmp/reports/host.xml /tmp/reports/vm.xml
 * ```
 */
let passed = 0, failed = 0, ignored = 0;
for (const path of Deno.args) {
  let xml: string;
  try {
    xml = await Deno.readTextFile(path);
  } catch {
    console.error(`summary: no report at ${path}: that tier did not finish`);
    failed++;
    continue;
  }
  for (const testcase of xml.matchAll(/<testcase\b[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const body = testcase[2] ?? "";
    if (/<(failure|error)\b/.test(body)) failed++;
    else if (/<skipped\b/.test(body)) ignored++;
    else passed++;
  }
}
console.log(`tests: ${passed} passed, ${failed} failed${ignored ? `, ${ignored} skipped` : ""}`);
if (failed > 0) Deno.exit(1);
