import assert from "node:assert/strict";
import { grantFor, type KubeApi } from "../../../csi/access.ts";
import { CsiError } from "../../../csi/errors.ts";
import type { PublishRequest } from "../../../csi/request.ts";
import type { ProgramRecord } from "../../../model/schemas.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
const UID = "0b9c2f1e-1111-4222-8333-444455556666";
const REQ: PublishRequest = {
  volumeId: "csi-1",
  targetPath: "/t",
  pod: { namespace: "apps", name: "reader", uid: UID, serviceAccount: "reader" },
  config: "gate",
  maps: ["gate_packets"],
  writable: false,
};
const RECORD = {
  id: 9,
  maps: { gate_packets: "/run/bpfd/fs/maps/9/gate_packets", gate_drop: "/run/bpfd/fs/maps/9/gate_drop" },
  metadata: { "bpfd.io/config": "gate" },
  reconciledFor: "gate-node-a",
  loadedAt: "2026-12-01T00:00:00Z",
} as unknown as ProgramRecord;

function api(objects: Record<string, Any>, allowed: string[]): KubeApi & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    get: <T>(path: string) => Promise.resolve(objects[path] as T | undefined),
    create<T>(_p: string, body: Any) {
      asked.push(body.spec.resourceAttributes.verb);
      return Promise.resolve(
        { status: { allowed: allowed.includes(body.spec.resourceAttributes.verb) } } as T,
      );
    },
  };
}
const POD_PATH = "/api/v1/namespaces/apps/pods/reader";
const pod = (spec: Any = {}, uid = UID) => ({
  [POD_PATH]: {
    metadata: { uid },
    spec: { nodeName: "node-a", serviceAccountName: "reader", securityContext: { fsGroup: 3000 }, ...spec },
  },
});

async function refused(p: Promise<unknown>, code: string, message: RegExp) {
  await assert.rejects(p, (e) => e instanceof CsiError && e.code === code && message.test(e.message));
}

Deno.test("csi access: a granted pod gets its fsGroup and the named maps' pins, read-only", async () => {
  const a = api(pod(), ["use"]);
  const grant = await grantFor(REQ, { api: a, nodeName: "node-a", programs: () => [RECORD] });
  assert.deepEqual(grant, { gid: 3000, writable: false, maps: { gate_packets: RECORD.maps.gate_packets } });
  assert.deepEqual(a.asked, ["use"]);
});

Deno.test("csi access: writing needs the update verb as well", async () => {
  const deps = (allowed: string[]) => ({
    api: api(pod(), allowed),
    nodeName: "node-a",
    programs: () => [RECORD],
  });
  await refused(
    grantFor({ ...REQ, writable: true }, deps(["use"])),
    "permission_denied",
    /may not write .*bpfd-maps-writer/,
  );
  assert.equal((await grantFor({ ...REQ, writable: true }, deps(["use", "update"]))).writable, true);
});

Deno.test("csi access: each refusal names its cause", async () => {
  const deps = (objects: Record<string, Any>, allowed = ["use"], programs = [RECORD]) => ({
    api: api(objects, allowed),
    nodeName: "node-a",
    programs: () => programs,
  });
  await refused(grantFor(REQ, deps({})), "not_found", /pod apps\/reader \(uid .*\) not found/);
  await refused(grantFor(REQ, deps(pod({}, "other"))), "not_found", /pod apps\/reader/);
  await refused(
    grantFor(REQ, deps(pod({ nodeName: "node-b" }))),
    "failed_precondition",
    /not on node node-a/,
  );
  await refused(
    grantFor(REQ, deps(pod({ serviceAccountName: "x" }))),
    "invalid_argument",
    /ServiceAccount reader/,
  );
  await refused(grantFor(REQ, deps(pod({ securityContext: {} }))), "failed_precondition", /fsGroup/);
  await refused(
    grantFor(REQ, deps(pod(), [])),
    "permission_denied",
    /ServiceAccount apps\/reader may not use the maps of BpfProgramConfig gate .*namespace apps.*bpfd-maps-user/,
  );
  await refused(grantFor(REQ, deps(pod(), ["use"], [])), "not_found", /BpfProgramConfig gate not found/);
  const config = { "/apis/bpfd.io/v1alpha1/bpfprogramconfigs/gate": {} };
  await refused(
    grantFor(REQ, deps({ ...pod(), ...config }, ["use"], [])),
    "unavailable",
    /not Loaded on node node-a yet/,
  );
  const failed = {
    "/apis/bpfd.io/v1alpha1/bpfprograms/gate-node-a": {
      status: {
        conditions: [{ type: "Loaded", status: "False", reason: "bpfdNotLoaded", message: "verifier: no" }],
      },
    },
  };
  await refused(
    grantFor(REQ, deps({ ...pod(), ...config, ...failed }, ["use"], [])),
    "failed_precondition",
    /gate's program failed on node node-a: verifier: no/,
  );
  await refused(
    grantFor({ ...REQ, maps: ["nope"] }, deps(pod())),
    "not_found",
    /has no map nope \(it has: gate_packets, gate_drop\)/,
  );
});
