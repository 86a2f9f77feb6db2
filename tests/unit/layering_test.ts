/**
 * The floor plan, checked: every import in the source tree points down the layer list, no folder imports
 * another folder's `_` modules, only functions/ and the HTTP edge answer with an HTTP status, and only
 * ffi/ lays out structs. Each rule is first shown on small examples, then applied to the tree.
 * @module
 */
import assert from "node:assert/strict";
import { blank, importsOf, lineAt, readTree } from "./_source.ts";

/**
 * The layers, top first: a file may import its own layer and the ones below, never one above. A layer
 * may hold several top-level entries (`mod.ts` is the client's face, `manifests/` the deploy tool's
 * objects). `bytecode/` (its build script) sits at the bottom and imports nothing of bpfd's.
 */
const LAYERS: readonly (readonly string[])[] = [
  ["cli"],
  ["client", "mod.ts"],
  ["deploy", "manifests"],
  ["controller"],
  ["runtime"],
  ["csi"],
  ["functions"],
  ["crds"],
  ["image"],
  ["kernel"],
  ["policy"],
  ["model"],
  ["lib"],
  ["ffi"],
  ["bytecode"],
];

/** What the source tree is: every layer, plus examples/ (applications: they may import only mod.ts). */
const SOURCE = [...LAYERS.flat(), "examples"];

/** Where a path (relative to the repository) sits: its first segment, `mod.ts` for the root module. */
function partOf(path: string): string {
  return path.split("/")[0];
}

function layerOf(part: string): number {
  return LAYERS.findIndex((layer) => layer.includes(part));
}

/**
 * Why `from` (a path relative to the repository) may not import `target`, or undefined when it may.
 * A `_` file or folder is private to its top-level folder: kernel/chains/ may use kernel/_x.ts,
 * runtime/ may not. examples/ are applications: they use bpfd through mod.ts only.
 */
function importProblem(from: string, target: string): string | undefined {
  const a = partOf(from), b = partOf(target);
  if (a === b) return undefined;
  if (!SOURCE.includes(b)) return `${a} may not import ${b}: it is not part of the source tree`;
  if (target.split("/").some((segment) => segment.startsWith("_"))) {
    return `${a} may not import _ modules of ${b}`;
  }
  if (a === "examples") return target === "mod.ts" ? undefined : `examples may import only mod.ts`;
  if (b === "examples" || layerOf(b) < layerOf(a)) return `${a} may not import ${b}`;
  return undefined;
}

/** The imports of one file that break the layering, as `file:line imports target (why)`. */
function layeringProblems(file: string, src: string): string[] {
  const problems: string[] = [];
  for (const { specifier, line } of importsOf(src)) {
    if (!specifier.startsWith("./") && !specifier.startsWith("../")) continue; // a package
    const target = new URL(specifier, `file:///${file}`).pathname.slice(1);
    const why = importProblem(file, target);
    if (why) problems.push(`${file}:${line} imports ${target} (${why})`);
  }
  return problems;
}

/**
 * Where an HTTP status may be answered: functions/ maps errors to statuses, runtime/app.ts and
 * runtime/auth/ are the HTTP edge (the API's own refusals: 404 no such function, 400 not JSON, 401/403);
 * controller/web*.ts is the controller's (the inventory page's 401/403).
 */
const STATUS_OWNERS = [
  /^functions\//,
  /^runtime\/app\.ts$/,
  /^runtime\/auth\//,
  /^runtime\/front_door\.ts$/, // the checks before the app: 403, 415, 421
  /^runtime\/http1\.ts$/, // the HTTP/1.1 server: 400, 411, 413, 431
  /^controller\/web[a-z_]*\.ts$/,
];

const STATUS = String.raw`(?:4\d\d|5\d\d)`;

/**
 * Ways of answering with an HTTP status (400–599): a literal in a `status` field (`status: 404`,
 * `status = 404`), as an error's first argument (`new BpfdError(404, ...)`, `new XError(e.status ?? 500)`),
 * in a hono answer (`c.json(body, 404)`, `c.status(404)`), or in a table from error codes to statuses
 * (`"not-found": 404`). Reading what another server answered (`res.status === 404`, the Kubernetes client's
 * `code`) is a client's business and allowed anywhere.
 */
const STATUS_FORMS = [
  new RegExp(String.raw`\bstatus\s*(?::|=(?!=))\s*${STATUS}\b`, "g"),
  new RegExp(String.raw`\bnew\s+\w*(?:Error|Exception)\(\s*[^,()]*?\b${STATUS}\b`, "g"),
  new RegExp(
    String
      .raw`\.(?:json|text|body|html|newResponse)\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*?,\s*${STATUS}\s*,?\s*\)`,
    "g",
  ),
  new RegExp(String.raw`\.status\(\s*${STATUS}\s*\)`, "g"),
  new RegExp(String.raw`["']\s*["']\s*:\s*${STATUS}\b`, "g"),
];

/** The places a file outside functions/ and the HTTP edge answers with an HTTP status. */
function statusProblems(file: string, src: string): string[] {
  if (STATUS_OWNERS.some((owner) => owner.test(file))) return [];
  const { bare } = blank(src);
  const lines = STATUS_FORMS.flatMap((form) =>
    [...bare.matchAll(form)].map((m) => lineAt(bare, m.index! + m[0].search(/\S/)))
  );
  return [...new Set(lines)].sort((x, y) => x - y).map((line) =>
    `${file}:${line} names an HTTP status: ${src.split("\n")[line - 1].trim()}`
  );
}

/**
 * A DataView access at an offset other than 0 lays out a struct: ffi/ owns struct layouts (ffi/abi.ts).
 * Reading or writing one scalar at offset 0 (a map's u64 value) is fine anywhere.
 */
const OFFSET_ACCESS = /\.(?:get|set)(?:Big)?(?:Int|Uint|Float)(?:8|16|32|64)\(\s*(?!0\s*[,)])/g;

/** The places a file outside ffi/ reads or writes a struct field by offset. */
function offsetProblems(file: string, src: string): string[] {
  if (partOf(file) === "ffi") return [];
  const { bare } = blank(src);
  return [...bare.matchAll(OFFSET_ACCESS)].map((m) => {
    const line = lineAt(bare, m.index!);
    return `${file}:${line} computes a struct offset: ${src.split("\n")[line - 1].trim()}`;
  });
}

function assertNone(problems: string[], what: string): void {
  if (problems.length) throw new Error(`${problems.length} ${what}:\n${problems.join("\n")}`);
}

Deno.test("layering: imports are found in every form, and never in comments or strings", () => {
  const src = [
    `/** @example`,
    ` * import { x } from "../runtime/a.ts";`,
    ` */`,
    `import { a } from "./a.ts";`,
    `import type {`,
    `  B,`,
    `} from "../model/b.ts";`,
    `export * from "./c.ts";`,
    `export { d } from "../lib/d.ts";`,
    `import "./e.ts";`,
    `const usage = "import x from '../runtime/f.ts'"; // import "../runtime/g.ts"`,
    'const re = /import "x"/; const t = `${1 / 2}`;',
    `const h = await import("../kernel/h.ts");`,
    `const i = new URL("./i.ts", import.meta.url);`,
    `const data = new URL("../bytecode/build/", import.meta.url);`,
    `import { z } from "zod";`,
  ].join("\n");
  assert.deepEqual(importsOf(src), [
    { specifier: "./a.ts", line: 4 },
    { specifier: "../model/b.ts", line: 7 },
    { specifier: "./c.ts", line: 8 },
    { specifier: "../lib/d.ts", line: 9 },
    { specifier: "./e.ts", line: 10 },
    { specifier: "../kernel/h.ts", line: 13 },
    { specifier: "./i.ts", line: 14 },
    { specifier: "zod", line: 16 },
  ]);
});

Deno.test("layering: a folder imports its own and lower layers, never a higher one or another's _ modules", () => {
  assert.equal(importProblem("runtime/main.ts", "functions/mod.ts"), undefined);
  assert.equal(importProblem("runtime/auth/auth.ts", "runtime/config.ts"), undefined, "same folder");
  assert.equal(importProblem("mod.ts", "client/maps.ts"), undefined, "mod.ts is the client's face");
  assert.equal(importProblem("mod.ts", "deploy/deploy.ts"), undefined);
  assert.equal(importProblem("deploy/deploy.ts", "manifests/manifests.ts"), undefined, "one layer");
  assert.equal(importProblem("kernel/chains/xdp.ts", "kernel/_errno.ts"), undefined, "inside kernel/");
  assert.equal(importProblem("examples/map_reader.ts", "mod.ts"), undefined);
  assert.equal(
    importProblem("kernel/kernel.ts", "functions/_errors.ts"),
    "kernel may not import _ modules of functions",
  );
  assert.equal(
    importProblem("runtime/app.ts", "functions/_errors.ts"),
    "runtime may not import _ modules of functions",
  );
  assert.equal(importProblem("functions/_ctx.ts", "runtime/state.ts"), "functions may not import runtime");
  assert.equal(
    importProblem("runtime/auth/auth.ts", "manifests/manifests.ts"),
    "runtime may not import manifests",
  );
  assert.equal(importProblem("ffi/libbpf.ts", "bytecode/build.ts"), undefined);
  assert.equal(importProblem("bytecode/build.ts", "ffi/abi.ts"), "bytecode may not import ffi");
  assert.equal(
    importProblem("lib/log.ts", "tests/_caps.ts"),
    "lib may not import tests: it is not part of the source tree",
  );
  assert.equal(importProblem("examples/map_reader.ts", "client/maps.ts"), "examples may import only mod.ts");
  assert.deepEqual(
    layeringProblems(
      "kernel/kernel.ts",
      `import { Kernel } from "../kernel/x.ts";\nimport { e } from "../functions/_errors.ts";\nimport "./chains/xdp.ts";\nconst r = await import("../runtime/main.ts");`,
    ),
    [
      "kernel/kernel.ts:2 imports functions/_errors.ts (kernel may not import _ modules of functions)",
      "kernel/kernel.ts:4 imports runtime/main.ts (kernel may not import runtime)",
    ],
  );
});

Deno.test("layering: every import in the source tree points down the layers and into no other folder's _ modules", async () => {
  const problems = (await readTree(SOURCE)).flatMap(({ file, src }) => layeringProblems(file, src));
  assertNone(
    problems,
    "imports break the layering (layers, top first: " +
      `${LAYERS.map((l) => l.join(" + ")).join(", ")})`,
  );
});

Deno.test("HTTP statuses: a status is answered only in functions/ and at the HTTP edge (runtime/app.ts, runtime/auth/)", async () => {
  const sample = [
    `if (res.status === 404) return undefined;`,
    `throw Object.assign(new Error("gone"), { code: 404 });`,
    `const message = "registry answered 401";`,
    `return new Response("no", { status: 403 });`,
    `throw new KernelError(e.status ?? 500, "x");`,
    `return c.json(toBody(err, { a: f(1) }),`,
    `  404);`,
    `const STATUS = { "not-found": 404 };`,
    `c.status(422);`,
    `const maxEntries = 500;`,
  ].join("\n");
  assert.deepEqual(statusProblems("kernel/x.ts", sample).map((p) => p.split(" names")[0]), [
    "kernel/x.ts:4",
    "kernel/x.ts:5",
    "kernel/x.ts:6",
    "kernel/x.ts:8",
    "kernel/x.ts:9",
  ]);
  assert.deepEqual(statusProblems("functions/_errors.ts", sample), []);
  assert.deepEqual(statusProblems("runtime/auth/middleware.ts", sample), []);
  const problems = (await readTree(SOURCE)).flatMap(({ file, src }) => statusProblems(file, src));
  assertNone(problems, "places outside functions/ and the HTTP edge name an HTTP status");
});

Deno.test("struct layouts: only ffi/ reads or writes a DataView at an offset other than 0", async () => {
  const sample = [
    `new DataView(key.buffer).setUint32(0, index, true);`,
    `return dv.getBigUint64(0, true);`,
    `dv.setUint32(PerfEventAttr.type, type, true);`,
    `const n = dv.getUint16(sh + 4, true);`,
  ].join("\n");
  assert.deepEqual(offsetProblems("kernel/x.ts", sample).map((p) => p.split(" computes")[0]), [
    "kernel/x.ts:3",
    "kernel/x.ts:4",
  ]);
  assert.deepEqual(offsetProblems("ffi/abi.ts", sample), []);
  const problems = (await readTree(SOURCE)).flatMap(({ file, src }) => offsetProblems(file, src));
  assertNone(problems, "places outside ffi/ compute struct offsets (put the layout in ffi/abi.ts)");
});

/** The folders of the node processes (the runtime and what it runs). */
const NODE_PARTS = ["runtime", "csi", "functions", "kernel", "ffi"];

const CLIENT_NODE = /^(?:npm:)?@kubernetes\/client-node(?:@|\/|$)/;

/**
 * Where a module of the node processes reaches `@kubernetes/client-node` (about 50 MiB of RSS, BENCHMARKS.md),
 * directly or through the modules it imports, type-only imports included: `a.ts → b.ts:line imports it`.
 */
function clientNodeProblems(files: Array<{ file: string; src: string }>): string[] {
  const imports = new Map(files.map(({ file, src }) => [file, importsOf(src)]));
  const path = new Map<string, string[]>(); // how each module was reached from a node module
  const queue = files.map(({ file }) => file).filter((file) => NODE_PARTS.includes(partOf(file)));
  for (const file of queue) path.set(file, [file]);
  const problems: string[] = [];
  for (const file of queue) { // grows while it is walked: breadth first
    for (const { specifier, line } of imports.get(file) ?? []) {
      if (CLIENT_NODE.test(specifier)) {
        problems.push(`${path.get(file)!.join(" → ")}:${line} imports ${specifier}`);
      }
      if (!specifier.startsWith("./") && !specifier.startsWith("../")) continue;
      const target = new URL(specifier, `file:///${file}`).pathname.slice(1);
      if (path.has(target) || !imports.has(target)) continue;
      path.set(target, [...path.get(file)!, target]);
      queue.push(target);
    }
  }
  return problems;
}

Deno.test("node runtime: no module of runtime/, csi/, functions/, kernel/ or ffi/ reaches @kubernetes/client-node, not even through another module", async () => {
  const sample = [
    { file: "runtime/a.ts", src: `import { b } from "../lib/b.ts";\nimport "./c.ts";` },
    {
      file: "lib/b.ts",
      src: `// import "@kubernetes/client-node"\nimport type * as k8s from "@kubernetes/client-node";`,
    },
    { file: "runtime/c.ts", src: `import { b } from "../lib/b.ts";` },
    { file: "csi/d.ts", src: `const k8s = await import("npm:@kubernetes/client-node@1.4.0");` },
    {
      file: "controller/e.ts",
      src: `import * as k8s from "@kubernetes/client-node";\nimport "../runtime/a.ts";`,
    },
  ];
  assert.deepEqual(clientNodeProblems(sample), [
    "csi/d.ts:1 imports npm:@kubernetes/client-node@1.4.0",
    "runtime/a.ts → lib/b.ts:2 imports @kubernetes/client-node",
  ]);
  assertNone(
    clientNodeProblems(await readTree(SOURCE)),
    "imports load @kubernetes/client-node into a node process (use runtime/kube_fetch.ts)",
  );
});
