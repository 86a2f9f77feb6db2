/**
 * The floor plan, checked: every import in the source tree points down the layer list, no folder imports
 * another folder's `_` modules, only functions/ and the HTTP edge answer with an HTTP status, and only
 * ffi/ lays out structs. Each rule is first shown on small examples, then applied to the tree.
 * @module
 */
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url).pathname;

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
  ["functions"],
  ["crds"],
  ["image"],
  ["kernel"],
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

// ---- reading source ----

/** Source text with comments blanked, and a copy with string and template contents blanked as well. */
function blank(src: string): { code: string; bare: string } {
  const code = src.split("");
  const bare = src.split("");
  const wipe = (to: string[], from: number, end: number) => {
    for (let k = from; k < end; k++) if (to[k] !== "\n") to[k] = " ";
  };
  let prev = ""; // the last significant character or word before `i`
  let i = 0;
  while (i < src.length) {
    const c = src[i], d = src[i + 1];
    if (c === "/" && d === "/") {
      const end = src.indexOf("\n", i) < 0 ? src.length : src.indexOf("\n", i);
      wipe(code, i, end), wipe(bare, i, end);
      i = end;
    } else if (c === "/" && d === "*") {
      const close = src.indexOf("*/", i + 2);
      const end = close < 0 ? src.length : close + 2;
      wipe(code, i, end), wipe(bare, i, end);
      i = end;
    } else if (c === '"' || c === "'" || c === "`" || (c === "/" && regexMayStart(prev))) {
      const end = literalEnd(src, i);
      wipe(bare, i + 1, end - 1);
      prev = c;
      i = end;
    } else {
      if (/[A-Za-z0-9_$]/.test(c)) {
        const word = /^[A-Za-z0-9_$]+/.exec(src.slice(i))![0];
        prev = word;
        i += word.length;
        continue;
      }
      if (!/\s/.test(c)) prev = c;
      i++;
    }
  }
  return { code: code.join(""), bare: bare.join("") };
}

const BEFORE_REGEX = new Set([
  "return",
  "typeof",
  "case",
  "do",
  "else",
  "in",
  "of",
  "void",
  "yield",
  "await",
]);

/** Whether a `/` after `prev` starts a regular expression (not a division). */
function regexMayStart(prev: string): boolean {
  if (prev === "" || BEFORE_REGEX.has(prev)) return true;
  return !/[A-Za-z0-9_$)\]}]$/.test(prev);
}

/** The index just past the string, template or regex literal that starts at `start`. */
function literalEnd(src: string, start: number): number {
  const quote = src[start];
  let inClass = false;
  for (let i = start + 1; i < src.length; i++) {
    const c = src[i];
    if (c === "\\") i++;
    else if (quote === "/" && c === "[") inClass = true;
    else if (quote === "/" && c === "]") inClass = false;
    else if (quote === "`" && c === "$" && src[i + 1] === "{") i = expressionEnd(src, i + 2) - 1;
    else if (c === quote && !inClass) return i + 1;
    else if (c === "\n" && quote !== "`") return i;
  }
  return src.length;
}

/** The index just past the `}` closing a template's `${` expression that starts at `start`. */
function expressionEnd(src: string, start: number): number {
  let depth = 1;
  for (let i = start; i < src.length; i++) {
    const c = src[i];
    if (c === '"' || c === "'" || c === "`") i = literalEnd(src, i) - 1;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return i + 1;
  }
  return src.length;
}

function lineAt(text: string, index: number): number {
  let line = 1;
  for (let k = 0; k < index; k++) if (text[k] === "\n") line++;
  return line;
}

/** One import of a module: the specifier as written and its line. */
interface Import {
  specifier: string;
  line: number;
}

const IMPORT_FORMS = [
  // import x from "a"; import type { X } from "a"; export * from "a"; export { x } from "a"
  /(?:^|[;}\n])\s*(?:import|export)\b[^;"'`]*?\bfrom\s*(["'])([^"'\n]+)\1/g,
  // import "a" (for its effects)
  /(?:^|[;}\n])\s*import\s*(["'])([^"'\n]+)\1/g,
  // import("a"), import.meta.resolve("a")
  /\bimport(?:\.meta\.resolve)?\s*\(\s*(["'`])([^"'`\n$]+)\1\s*[,)]/g,
  // new URL("a.ts", import.meta.url)
  /\bnew\s+URL\(\s*(["'`])([^"'`\n$]+\.ts)\1\s*,\s*import\.meta\.url\s*\)/g,
];

/** Every import in a module's text: static, `export ... from`, dynamic, `new URL("x.ts", import.meta.url)`. */
function importsOf(src: string): Import[] {
  const { code } = blank(src);
  const found: Array<Import & { at: number }> = [];
  for (const form of IMPORT_FORMS) {
    for (const m of code.matchAll(form)) {
      const at = m.index! + m[0].lastIndexOf(m[2]);
      if (!found.some((f) => f.at === at)) found.push({ specifier: m[2], line: lineAt(code, at), at });
    }
  }
  return found.sort((a, b) => a.at - b.at).map(({ specifier, line }) => ({ specifier, line }));
}

// ---- rules ----

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
 * runtime/auth/ are the HTTP edge (the API's own refusals: 404 no such function, 400 not JSON, 401/403).
 */
const STATUS_OWNERS = [/^functions\//, /^runtime\/app\.ts$/, /^runtime\/auth\//];

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

// ---- the tree ----

/** Every .ts file of the source tree (tests/ may import anything), relative to the repository. */
async function sourceFiles(): Promise<Array<{ file: string; src: string }>> {
  const files: string[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(`${root}${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory && entry.name !== "build" && entry.name !== "node_modules") await walk(path);
      else if (entry.isFile && entry.name.endsWith(".ts")) files.push(path);
    }
  };
  for (const part of SOURCE) {
    if (part.endsWith(".ts")) files.push(part);
    else await walk(part);
  }
  return await Promise.all(
    files.sort().map(async (file) => ({ file, src: await Deno.readTextFile(`${root}${file}`) })),
  );
}

function assertNone(problems: string[], what: string): void {
  if (problems.length) throw new Error(`${problems.length} ${what}:\n${problems.join("\n")}`);
}

// ---- tests ----

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
  const problems = (await sourceFiles()).flatMap(({ file, src }) => layeringProblems(file, src));
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
  const problems = (await sourceFiles()).flatMap(({ file, src }) => statusProblems(file, src));
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
  const problems = (await sourceFiles()).flatMap(({ file, src }) => offsetProblems(file, src));
  assertNone(problems, "places outside ffi/ compute struct offsets (put the layout in ffi/abi.ts)");
});
