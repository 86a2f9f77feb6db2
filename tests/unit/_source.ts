/**
 * Reading TypeScript source as text for the tree-wide checks in layering_test.ts: comments (and, for
 * some checks, string contents) blanked with lines kept, the imports of a module, the files of the tree.
 * @module
 */

const root = new URL("../../", import.meta.url).pathname;

/** Source text with comments blanked, and a copy with string and template contents blanked as well. */
export function blank(src: string): { code: string; bare: string } {
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

/** The 1-based line of `index` in `text`. */
export function lineAt(text: string, index: number): number {
  let line = 1;
  for (let k = 0; k < index; k++) if (text[k] === "\n") line++;
  return line;
}

/** One import of a module: the specifier as written and its line. */
export interface Import {
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
export function importsOf(src: string): Import[] {
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

/** Every .ts file under `parts` (folders or files of the repository), with paths relative to it. */
export async function readTree(parts: readonly string[]): Promise<Array<{ file: string; src: string }>> {
  const files: string[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(`${root}${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory && entry.name !== "build" && entry.name !== "node_modules") await walk(path);
      else if (entry.isFile && entry.name.endsWith(".ts")) files.push(path);
    }
  };
  for (const part of parts) {
    if (part.endsWith(".ts")) files.push(part);
    else await walk(part);
  }
  return await Promise.all(
    files.sort().map(async (file) => ({ file, src: await Deno.readTextFile(`${root}${file}`) })),
  );
}
