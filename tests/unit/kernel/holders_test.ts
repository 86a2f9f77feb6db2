import assert from "node:assert/strict";
import { podOfCgroup } from "../../../kernel/holders.ts";

Deno.test("holders: pod UID and container from kubepods cgroup paths (cgroupfs, systemd, v1 hybrid), none elsewhere", () => {
  const uid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
  const cid = "a".repeat(64);
  assert.deepEqual(podOfCgroup(`0::/kubepods/besteffort/pod${uid}/${cid}\n`), {
    podUid: uid,
    containerId: cid,
  });
  assert.deepEqual(
    podOfCgroup(
      `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${
        uid.replaceAll("-", "_")
      }.slice/cri-containerd-${cid}.scope\n`,
    ),
    { podUid: uid, containerId: cid },
  );
  assert.deepEqual(
    podOfCgroup(`12:memory:/kubepods/pod${uid}/${cid}\n1:name=systemd:/user.slice\n`),
    { podUid: uid, containerId: cid },
  );
  assert.deepEqual(podOfCgroup(`0::/kubepods/pod${uid}\n`), { podUid: uid });
  assert.deepEqual(podOfCgroup("0::/user.slice/user-0.slice/session-1.scope\n"), {});
  assert.deepEqual(podOfCgroup(""), {});
});

Deno.test("holders: without kubepods (a kubelet with cgroupsPerQOS false), the container id that ends a path", () => {
  const cid = "b".repeat(64);
  assert.deepEqual(podOfCgroup(`12:memory:/${cid}\n0::/\n`), { containerId: cid });
  assert.deepEqual(podOfCgroup(`0::/system.slice/cri-containerd-${cid}.scope\n`), { containerId: cid });
  assert.deepEqual(podOfCgroup(`0::/${cid}/extra\n`), {});
});
