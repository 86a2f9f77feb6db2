/**
 * A small, deterministic YAML emitter for JSON-like data (maps, lists, strings, numbers, booleans,
 * null), used for the generated CRD files, in the layout `deno fmt` gives YAML. Strings that are not plainly safe are written as JSON strings,
 * which YAML reads back unchanged.
 *
 * @module
 */

const KEYWORDS = /^(true|false|yes|no|on|off|null|y|n|~)$/i;
const PLAIN = /^[A-Za-z_/][A-Za-z0-9_.\/-]*$/;

function scalar(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  const s = String(v);
  return PLAIN.test(s) && !KEYWORDS.test(s) ? s : JSON.stringify(s);
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function emit(v: unknown, indent: string, out: string[]): void {
  if (isMap(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) continue;
      const key = scalar(k);
      if (isMap(x) && Object.keys(x).length) {
        out.push(`${indent}${key}:`);
        emit(x, indent + "  ", out);
      } else if (Array.isArray(x) && x.length) {
        out.push(`${indent}${key}:`);
        emit(x, indent + "  ", out);
      } else {
        out.push(`${indent}${key}: ${inline(x)}`);
      }
    }
  } else if (Array.isArray(v)) {
    for (const x of v) {
      if ((isMap(x) && Object.keys(x).length) || (Array.isArray(x) && x.length)) {
        const sub: string[] = [];
        emit(x, indent + "  ", sub);
        out.push(`${indent}- ${sub[0].slice(indent.length + 2)}`, ...sub.slice(1));
      } else {
        out.push(`${indent}- ${inline(x)}`);
      }
    }
  } else {
    out.push(indent + inline(v));
  }
}

function inline(v: unknown): string {
  if (isMap(v)) return "{}";
  if (Array.isArray(v)) return "[]";
  return scalar(v);
}

/** One YAML document for a JSON-like value. */
export function toYaml(v: unknown): string {
  const out: string[] = [];
  emit(v, "", out);
  return out.join("\n") + "\n";
}
