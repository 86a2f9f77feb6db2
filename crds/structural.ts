/**
 * Turns the JSON Schema that zod's `z.toJSONSchema(..., {target: "openapi-3.0"})` makes into a Kubernetes
 * *structural* schema (apiextensions.k8s.io/v1):
 *
 * - every node that is not inside a logical junctor has a `type`;
 * - inside `allOf`/`anyOf`/`oneOf`/`not` there is no `type`, `description`, `default`,
 *   `additionalProperties`, `nullable` or `x-kubernetes-*`, and every property named there is also
 *   declared outside;
 * - `properties` and `additionalProperties` are never both set;
 * - keywords Kubernetes does not know (`$schema`, `propertyNames`, `const`, ...) are dropped or rewritten.
 *
 * A union of object schemas (zod `z.union` / `z.discriminatedUnion`) becomes one object with every
 * branch's properties (optional) plus a `oneOf` of the branches' `required` lists and discriminator enums,
 * so the API server still refuses what no branch accepts.
 *
 * @module
 */

export type Schema = Record<string, unknown>;

const DROP = new Set(["$schema", "$id", "id", "propertyNames", "examples", "title", "readOnly", "writeOnly"]);
const NOT_IN_JUNCTOR = new Set([
  "type",
  "description",
  "default",
  "additionalProperties",
  "nullable",
  "format",
]);
const JUNCTORS = ["allOf", "anyOf", "oneOf"] as const;

function isObj(v: unknown): v is Schema {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Converts one schema node (outside junctors). */
export function toStructural(input: Schema): Schema {
  const s: Schema = { ...input };
  for (const k of Object.keys(s)) if (DROP.has(k)) delete s[k];
  if ("const" in s) {
    s.enum = [s.const];
    delete s.const;
  }
  // A union of typed schemas with no type of its own: merge it.
  for (const j of ["anyOf", "oneOf"] as const) {
    const branches = s[j];
    if (
      s.type === undefined && Array.isArray(branches) &&
      branches.every((b) => isObj(b) && b.type !== undefined)
    ) {
      delete s[j];
      Object.assign(s, mergeUnion(branches as Schema[]));
    }
  }
  if (
    s.type === undefined && !s["x-kubernetes-preserve-unknown-fields"] && !s["x-kubernetes-int-or-string"]
  ) {
    // zod's `unknown`/`any`: keep whatever is there.
    if (Object.keys(s).filter((k) => k !== "description").length === 0) {
      s["x-kubernetes-preserve-unknown-fields"] = true;
    } else if (isObj(s.properties)) {
      s.type = "object";
    } else {
      throw new Error(`schema node without a type: ${JSON.stringify(input).slice(0, 200)}`);
    }
  }
  if (isObj(s.properties)) {
    const props: Schema = {};
    for (const [k, v] of Object.entries(s.properties)) props[k] = toStructural(v as Schema);
    s.properties = props;
    delete s.additionalProperties;
  } else if (isObj(s.additionalProperties)) {
    s.additionalProperties = toStructural(s.additionalProperties);
  } else if (s.additionalProperties === false) {
    delete s.additionalProperties;
  }
  if (isObj(s.items)) s.items = toStructural(s.items);
  for (const j of JUNCTORS) {
    if (Array.isArray(s[j])) s[j] = (s[j] as Schema[]).map((b) => junctorBranch(b, s, j));
  }
  if (isObj(s.not)) s.not = junctorBranch(s.not, s, "not");
  if (Array.isArray(s.required) && s.required.length === 0) delete s.required;
  return ordered(s);
}

const FIRST = [
  "description",
  "type",
  "format",
  "enum",
  "properties",
  "additionalProperties",
  "items",
  "required",
];
const LAST = ["allOf", "anyOf", "oneOf", "not"];

/** Readable key order: description and type first, junctors last. */
function ordered(s: Schema): Schema {
  const keys = Object.keys(s);
  const rank = (k: string) =>
    FIRST.includes(k) ? FIRST.indexOf(k) : LAST.includes(k) ? 100 + LAST.indexOf(k) : 50;
  return Object.fromEntries(keys.sort((a, b) => rank(a) - rank(b)).map((k) => [k, s[k]]));
}

/** A branch of a junctor: value validations only, on properties the outer schema declares. */
function junctorBranch(input: Schema, outer: Schema, where: string): Schema {
  const b: Schema = {};
  for (const [k, v] of Object.entries(input)) {
    if (DROP.has(k) || NOT_IN_JUNCTOR.has(k) || k.startsWith("x-kubernetes-")) continue;
    if (k === "const") {
      b.enum = [v];
      continue;
    }
    b[k] = v;
  }
  if (isObj(b.properties)) {
    const outerProps = isObj(outer.properties) ? outer.properties : {};
    const props: Schema = {};
    for (const [k, v] of Object.entries(b.properties)) {
      if (!(k in outerProps)) throw new Error(`${where}: property ${k} is not declared outside the junctor`);
      props[k] = junctorBranch(v as Schema, outerProps[k] as Schema, `${where}.${k}`);
    }
    b.properties = props;
  }
  if (isObj(b.items)) b.items = junctorBranch(b.items, (outer.items ?? {}) as Schema, `${where}[]`);
  for (const j of JUNCTORS) {
    if (Array.isArray(b[j])) b[j] = (b[j] as Schema[]).map((x) => junctorBranch(x, outer, `${where}.${j}`));
  }
  return b;
}

/** Merges a union of typed schemas into one structural schema with a `oneOf` that keeps the branches apart. */
function mergeUnion(branches: Schema[]): Schema {
  const types = new Set(branches.map((b) => b.type));
  if (types.size !== 1) {
    const t = [...types].sort().join("|");
    if (t === "integer|string") return { "x-kubernetes-int-or-string": true };
    throw new Error(`cannot make a structural schema of a union of ${t}`);
  }
  const type = branches[0].type as string;
  if (type !== "object") {
    // A union of scalars of one type: one schema with the enums joined (or no enum when any branch is open).
    const enums = branches.map((b) => b.enum as unknown[] | undefined);
    const out: Schema = { type };
    if (enums.every((e) => Array.isArray(e))) out.enum = [...new Set(enums.flat())];
    return out;
  }
  const props: Schema = {};
  for (const b of branches) {
    for (const [k, v] of Object.entries((b.properties ?? {}) as Schema)) {
      props[k] = k in props ? mergeProperty(props[k] as Schema, v as Schema) : v;
    }
  }
  const oneOf = branches.map((b) => {
    const x: Schema = {};
    if (Array.isArray(b.required) && b.required.length) x.required = b.required;
    const disc: Schema = {};
    for (const [k, v] of Object.entries((b.properties ?? {}) as Schema)) {
      if (isObj(v) && (Array.isArray(v.enum) || "const" in v)) disc[k] = { enum: v.enum ?? [v.const] };
    }
    if (Object.keys(disc).length) x.properties = disc;
    return x;
  });
  const out: Schema = { type: "object", properties: props };
  // Drop the junctor when it could not tell the branches apart anyway.
  if (oneOf.some((x) => Object.keys(x).length)) out.oneOf = oneOf;
  return out;
}

function mergeProperty(a: Schema, b: Schema): Schema {
  if (a.type !== b.type) {
    throw new Error(`union branches disagree on a property's type: ${a.type} / ${b.type}`);
  }
  const out: Schema = { ...a };
  if (Array.isArray(a.enum) && Array.isArray(b.enum)) out.enum = [...new Set([...a.enum, ...b.enum])];
  else delete out.enum;
  if (a.type === "object" && isObj(a.properties) && isObj(b.properties)) {
    const props: Schema = { ...a.properties };
    for (const [k, v] of Object.entries(b.properties)) {
      props[k] = k in props ? mergeProperty(props[k] as Schema, v as Schema) : v;
    }
    out.properties = props;
    delete out.required;
  }
  return out;
}
