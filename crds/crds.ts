/**
 * The CustomResourceDefinitions of bpfd, built from the zod schemas in crds/schema.ts. crds/generate.ts
 * writes them as YAML next to this file; tests check the committed files equal this output, and
 * `deno task deploy` can apply `crdDocuments()` directly.
 *
 * @module
 */
import { z } from "zod";
import {
  BpfProgramConfigSpec,
  BpfProgramConfigStatus,
  BpfProgramSpec,
  BpfProgramStatus,
  GROUP,
  VERSION,
} from "./schema.ts";
import { type Schema, toStructural } from "./structural.ts";
import {
  BpfNodeInventorySpec,
  BpfNodeInventoryStatus,
  INVENTORY,
  INVENTORY_COLUMNS,
} from "../model/inventory.ts";
import { BpfPolicySpec, BpfPolicyStatus } from "../model/policy.ts";

function jsonSchema(s: z.core.$ZodType): Schema {
  return toStructural(
    z.toJSONSchema(s, { target: "openapi-3.0", io: "input", unrepresentable: "any" }) as Schema,
  );
}

function rootSchema(description: string, spec: z.core.$ZodType, status: z.core.$ZodType): Schema {
  return {
    description,
    type: "object",
    properties: {
      apiVersion: { type: "string" },
      kind: { type: "string" },
      metadata: { type: "object" },
      spec: jsonSchema(spec),
      status: jsonSchema(status),
    },
    required: ["spec"],
  };
}

interface Names {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
}

function crd(names: Names, schema: Schema, columns: Schema[]) {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${names.plural}.${GROUP}`,
      labels: { "app.kubernetes.io/part-of": "bpfd" },
    },
    spec: {
      group: GROUP,
      scope: "Cluster",
      names: {
        kind: names.kind,
        listKind: `${names.kind}List`,
        plural: names.plural,
        singular: names.singular,
        shortNames: names.shortNames,
        categories: ["bpfd"],
      },
      versions: [{
        name: VERSION,
        served: true,
        storage: true,
        schema: { openAPIV3Schema: schema },
        subresources: { status: {} },
        additionalPrinterColumns: columns,
      }],
    },
  };
}

const loaded = (field: string) => `.status.conditions[?(@.type=="Loaded")].${field}`;

/** The CRDs: BpfProgramConfig, BpfProgram, BpfPolicy, BpfNodeInventory. */
export function crdDocuments() {
  return [
    crd(
      {
        kind: "BpfProgramConfig",
        plural: "bpfprogramconfigs",
        singular: "bpfprogramconfig",
        shortNames: ["bpc"],
      },
      rootSchema(
        "BpfProgramConfig: a BPF program to load on every node the nodeselector matches.",
        BpfProgramConfigSpec,
        BpfProgramConfigStatus,
      ),
      [
        { name: "Type", type: "string", jsonPath: ".spec.type" },
        { name: "Program", type: "string", jsonPath: ".spec.name" },
        { name: "Priority", type: "integer", jsonPath: ".spec.priority", priority: 1 },
        { name: "Attach", type: "string", jsonPath: ".spec.attachpoint.interface", priority: 1 },
        { name: "Nodes", type: "integer", jsonPath: ".status.nodes.selected", description: "Nodes selected" },
        { name: "Loaded", type: "integer", jsonPath: ".status.nodes.loaded", description: "Nodes loaded" },
        { name: "Failing", type: "integer", jsonPath: ".status.nodes.failing", description: "Nodes failing" },
        { name: "Status", type: "string", jsonPath: loaded("reason") },
        { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
      ],
    ),
    crd(
      { kind: "BpfProgram", plural: "bpfprograms", singular: "bpfprogram", shortNames: ["bp"] },
      rootSchema(
        "BpfProgram: what one node has loaded for one BpfProgramConfig (written by the controller).",
        BpfProgramSpec,
        BpfProgramStatus,
      ),
      [
        { name: "Node", type: "string", jsonPath: ".spec.node" },
        { name: "Config", type: "string", jsonPath: ".metadata.labels.owningConfig" },
        { name: "Loaded", type: "string", jsonPath: loaded("status") },
        { name: "Reason", type: "string", jsonPath: loaded("reason") },
        { name: "Message", type: "string", jsonPath: loaded("message"), priority: 1 },
        { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
      ],
    ),
    crd(
      { kind: "BpfPolicy", plural: "bpfpolicies", singular: "bpfpolicy", shortNames: ["bpol"] },
      rootSchema(
        "BpfPolicy: who may load which BPF programs, where (docs/policy.md).",
        BpfPolicySpec,
        BpfPolicyStatus,
      ),
      [{ name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }],
    ),
    crd(
      { kind: INVENTORY.kind, plural: INVENTORY.plural, singular: INVENTORY.singular, shortNames: ["bni"] },
      rootSchema(
        "BpfNodeInventory: every BPF program in one node's kernel (written by that node's runtime).",
        BpfNodeInventorySpec,
        BpfNodeInventoryStatus,
      ),
      INVENTORY_COLUMNS,
    ),
  ];
}

/** The file each CRD is written to, relative to crds/. */
export function crdFileName(doc: ReturnType<typeof crdDocuments>[number]): string {
  return `${GROUP}_${doc.spec.names.plural}.yaml`;
}
