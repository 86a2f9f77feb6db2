/** zod's JSON Schema made into Kubernetes structural schemas, checked without an API server. */
import assert from "node:assert/strict";
import { type Schema, toStructural } from "../../../crds/structural.ts";
import { crdDocuments } from "../../../crds/crds.ts";

const NOT_IN_JUNCTOR = ["type", "description", "default", "additionalProperties", "nullable"];

/** The places a schema breaks the structural rules of apiextensions.k8s.io/v1, as JSON paths. */
function structuralProblems(s: Schema, path = "", outer?: Schema): string[] {
  const problems: string[] = [];
  const inJunctor = outer !== undefined;
  if (inJunctor) {
    for (const k of Object.keys(s)) {
      if (NOT_IN_JUNCTOR.includes(k) || k.startsWith("x-kubernetes-")) {
        problems.push(`${path}: ${k} in a junctor`);
      }
    }
  } else if (!s.type && !s["x-kubernetes-preserve-unknown-fields"] && !s["x-kubernetes-int-or-string"]) {
    problems.push(`${path}: no type`);
  }
  if (s.properties && s.additionalProperties) problems.push(`${path}: properties and additionalProperties`);
  for (const k of ["$schema", "const", "propertyNames", "title"]) if (k in s) problems.push(`${path}: ${k}`);
  const props = (s.properties ?? {}) as Record<string, Schema>;
  for (const [k, v] of Object.entries(props)) {
    const declared = inJunctor ? ((outer.properties ?? {}) as Record<string, Schema>)[k] : undefined;
    if (inJunctor && !declared) problems.push(`${path}.${k}: not declared outside the junctor`);
    problems.push(...structuralProblems(v, `${path}.${k}`, inJunctor ? declared ?? {} : undefined));
  }
  if (s.items) {
    problems.push(...structuralProblems(s.items as Schema, `${path}[]`, inJunctor ? {} : undefined));
  }
  if (s.additionalProperties && typeof s.additionalProperties === "object") {
    problems.push(...structuralProblems(s.additionalProperties as Schema, `${path}{}`));
  }
  for (const j of ["allOf", "anyOf", "oneOf"]) {
    for (const [i, b] of ((s[j] ?? []) as Schema[]).entries()) {
      problems.push(...structuralProblems(b, `${path}.${j}[${i}]`, inJunctor ? outer : s));
    }
  }
  return problems;
}

Deno.test("structural schema: keywords Kubernetes does not know are dropped, const becomes a one-value enum", () => {
  assert.deepEqual(
    toStructural({
      $schema: "http://json-schema.org/draft-04/schema#",
      title: "T",
      type: "object",
      properties: { kind: { const: "Thing", type: "string" }, name: { type: "string", propertyNames: {} } },
      required: ["kind"],
    }),
    {
      type: "object",
      properties: { kind: { type: "string", enum: ["Thing"] }, name: { type: "string" } },
      required: ["kind"],
    },
  );
});

Deno.test("structural schema: every node outside a junctor gets a type, or keeps unknown fields when it has none", () => {
  assert.deepEqual(toStructural({ properties: { a: { description: "anything" } } }), {
    type: "object",
    properties: { a: { description: "anything", "x-kubernetes-preserve-unknown-fields": true } },
  });
  assert.throws(() => toStructural({ enum: [1, 2] }), /schema node without a type/);
});

Deno.test("structural schema: properties and additionalProperties are never both set; false is dropped", () => {
  assert.deepEqual(
    toStructural({ type: "object", properties: { a: { type: "string" } }, additionalProperties: false }),
    { type: "object", properties: { a: { type: "string" } } },
  );
  assert.deepEqual(toStructural({ type: "object", additionalProperties: { type: "integer", title: "n" } }), {
    type: "object",
    additionalProperties: { type: "integer" },
  });
  assert.deepEqual(toStructural({ type: "object", properties: {}, required: [] }), {
    type: "object",
    properties: {},
  });
});

Deno.test("structural schema: a union of objects becomes one object with a oneOf that keeps the branches apart", () => {
  const union = toStructural({
    anyOf: [
      {
        type: "object",
        properties: { type: { type: "string", enum: ["xdp"] }, iface: { type: "string" } },
        required: ["type", "iface"],
      },
      {
        type: "object",
        properties: {
          type: { type: "string", enum: ["tracepoint"] },
          tracepoint: { type: "string" },
          iface: { type: "string" },
        },
        required: ["type", "tracepoint"],
      },
    ],
  });
  assert.deepEqual(union, {
    type: "object",
    properties: {
      type: { type: "string", enum: ["xdp", "tracepoint"] },
      iface: { type: "string" },
      tracepoint: { type: "string" },
    },
    oneOf: [
      { required: ["type", "iface"], properties: { type: { enum: ["xdp"] } } },
      { required: ["type", "tracepoint"], properties: { type: { enum: ["tracepoint"] } } },
    ],
  });
  assert.deepEqual(structuralProblems(union), []);
});

Deno.test("structural schema: unions of scalars join their enums; integer or string is int-or-string", () => {
  assert.deepEqual(
    toStructural({ anyOf: [{ type: "string", enum: ["a"] }, { type: "string", enum: ["b", "a"] }] }),
    {
      type: "string",
      enum: ["a", "b"],
    },
  );
  assert.deepEqual(toStructural({ anyOf: [{ type: "string", enum: ["a"] }, { type: "string" }] }), {
    type: "string",
  });
  assert.deepEqual(toStructural({ anyOf: [{ type: "integer" }, { type: "string" }] }), {
    "x-kubernetes-int-or-string": true,
  });
  assert.throws(
    () => toStructural({ anyOf: [{ type: "object", properties: {} }, { type: "string" }] }),
    /cannot make a structural schema of a union of object\|string/,
  );
  assert.throws(
    () =>
      toStructural({
        anyOf: [
          { type: "object", properties: { a: { type: "string" } } },
          { type: "object", properties: { a: { type: "integer" } } },
        ],
      }),
    /union branches disagree on a property's type: string \/ integer/,
  );
});

Deno.test("structural schema: a junctor keeps only value checks, on properties declared outside it", () => {
  assert.deepEqual(
    toStructural({
      type: "object",
      properties: { a: { type: "string" }, b: { type: "integer" } },
      oneOf: [
        {
          required: ["a"],
          description: "with a",
          properties: { a: { type: "string", const: "x", default: "x" } },
        },
        { required: ["b"], not: { required: ["a"] } },
      ],
    }),
    {
      type: "object",
      properties: { a: { type: "string" }, b: { type: "integer" } },
      oneOf: [{ required: ["a"], properties: { a: { enum: ["x"] } } }, {
        required: ["b"],
        not: { required: ["a"] },
      }],
    },
  );
  assert.throws(
    () => toStructural({ type: "object", properties: {}, anyOf: [{ properties: { c: { minLength: 1 } } }] }),
    /anyOf: property c is not declared outside the junctor/,
  );
});

Deno.test("structural schema: description and type come first, junctors last", () => {
  const keys = Object.keys(
    toStructural({
      oneOf: [{ required: ["a"] }],
      required: ["a"],
      properties: { a: { type: "string" } },
      description: "d",
      type: "object",
    }),
  );
  assert.deepEqual(keys, ["description", "type", "properties", "required", "oneOf"]);
});

Deno.test("structural schema: both of bpfd's CRDs are structural", () => {
  for (const doc of crdDocuments()) {
    const schema = doc.spec.versions[0].schema.openAPIV3Schema as Schema;
    assert.deepEqual(structuralProblems(schema, doc.spec.names.kind), []);
    assert.deepEqual(
      structuralProblems({ type: "object", properties: {}, anyOf: [{ type: "string" }] }, "bad"),
      [
        "bad.anyOf[0]: type in a junctor",
      ],
      "the checker itself catches a type in a junctor",
    );
  }
});
