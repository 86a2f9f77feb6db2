import assert from "node:assert/strict";
import { CsiError } from "../../../csi/errors.ts";
import { publishRequest, type RawPublishRequest, targetPathOf } from "../../../csi/request.ts";

const UID = "0b9c2f1e-1111-4222-8333-444455556666";
const LIMITS = { kubeletDir: "/var/lib/kubelet", maxMapsPerVolume: 3 };
const TARGET = `/var/lib/kubelet/pods/${UID}/volumes/kubernetes.io~csi/maps/mount`;
const POD = {
  "csi.storage.k8s.io/pod.namespace": "apps",
  "csi.storage.k8s.io/pod.name": "reader",
  "csi.storage.k8s.io/pod.uid": UID,
  "csi.storage.k8s.io/serviceAccount.name": "reader",
  "csi.storage.k8s.io/ephemeral": "true",
};
const good = (over: Partial<RawPublishRequest> = {}, attrs: Record<string, string | undefined> = {}) => ({
  volumeId: "csi-0123abcd",
  targetPath: TARGET,
  readonly: true,
  volumeCapability: { mount: {}, block: null },
  ...over,
  volumeContext: Object.fromEntries(
    Object.entries({ ...POD, "bpfd.io/config": "xdp-counter", "bpfd.io/maps": "xdp_packets", ...attrs })
      .filter(([, v]) => v !== undefined),
  ) as Record<string, string>,
});

function refused(raw: RawPublishRequest, message: RegExp) {
  assert.throws(() => publishRequest(raw, LIMITS), (e) => {
    assert.ok(e instanceof CsiError);
    assert.equal(e.code, "invalid_argument");
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("csi request: a kubelet's ephemeral volume request is read as pod, config, maps and access", () => {
  assert.deepEqual(publishRequest(good({}, { "bpfd.io/maps": "a, b" }), LIMITS), {
    volumeId: "csi-0123abcd",
    targetPath: TARGET,
    pod: { namespace: "apps", name: "reader", uid: UID, serviceAccount: "reader" },
    config: "xdp-counter",
    maps: ["a", "b"],
    writable: false,
  });
  assert.equal(publishRequest(good({ readonly: false }), LIMITS).writable, true);
});

Deno.test("csi request: malformed attributes are refused naming the attribute", () => {
  refused(good({}, { "bpfd.io/config": undefined }), /bpfd.io\/config is required/);
  refused(good({}, { "bpfd.io/config": "Not_A_Name" }), /bpfd.io\/config "Not_A_Name" is not a name/);
  refused(good({}, { "bpfd.io/maps": undefined }), /bpfd.io\/maps is required/);
  refused(good({}, { "bpfd.io/maps": "" }), /"" is not a map name/);
  refused(good({}, { "bpfd.io/maps": "a,../b" }), /"..\/b" is not a map name/);
  refused(good({}, { "bpfd.io/maps": "a,a" }), /names a map twice/);
  refused(good({}, { "bpfd.io/maps": "a,b,c,d" }), /names 4 maps: at most 3 per volume/);
  refused(good({}, { "bpfd.io/mpas": "a" }), /volume attribute "bpfd.io\/mpas" is unknown/);
  refused(
    good({}, { "csi.storage.k8s.io/pod.uid": undefined }),
    /lacks csi.storage.k8s.io\/pod.uid: .*podInfoOnMount/,
  );
  refused(good({ volumeId: "../etc" }), /volume_id "..\/etc"/);
  refused(good({ volumeId: "" }), /volume_id ""/);
  refused(good({ volumeCapability: { block: {} } }), /block access is not supported/);
});

Deno.test("csi request: a target outside the pod's CSI volume directory is refused", () => {
  refused(
    good({ targetPath: "/etc/mount" }),
    /target_path "\/etc\/mount" is not a pod's CSI volume directory/,
  );
  refused(good({ targetPath: `${TARGET}/../../../../../../../etc` }), /is not a pod's CSI volume directory/);
  refused(
    good({ targetPath: TARGET.replace("kubernetes.io~csi", "kubernetes.io~empty-dir") }),
    /not a pod's CSI/,
  );
  const other = TARGET.replace(UID, "11111111-2222-4333-8444-555566667777");
  refused(good({ targetPath: other }), /is not under pod .*'s directory/);
  assert.equal(targetPathOf({ targetPath: other }, "/var/lib/kubelet/"), other);
});
