/**
 * Issue 12, items 1 and 4: local users are not root through the socket. `nobody` cannot connect; with the
 * socket file opened up, `nobody` and members of the map group `bpfd` still get 403 and nothing loads;
 * members of `bpfd-admin` load and are recorded by the kernel's credentials; nobody but root can hold the
 * state lock.
 */
import * as assert from "node:assert/strict";
import { bytecodePath, cleanUp, kernelSnapshot, leftovers, RuntimeProcess } from "../../_runtime.ts";
import { curlAs, ensureGroup, runAs } from "./_attack.ts";

const load = {
  bytecode: { path: bytecodePath("xdp_counter") },
  programs: [{ name: "xdp_counter", type: "xdp" }],
};

Deno.test("socket: nobody and the map group cannot load; bpfd-admin members can, recorded by uid, gid and pid", async () => {
  const mapGid = await ensureGroup("bpfd"), adminGid = await ensureGroup("bpfd-admin");
  const dir = await Deno.makeTempDir({ prefix: "bpfd-sec-socket-" });
  const before = kernelSnapshot();
  let rt: RuntimeProcess | undefined;
  try {
    rt = await RuntimeProcess.start(dir);
    const socket = await Deno.stat(rt.socket);
    assert.equal(socket.mode! & 0o777, 0o660);
    assert.deepEqual([socket.uid, socket.gid], [0, adminGid]);

    // The kernel refuses the connection: the socket is root:bpfd-admin 0660.
    assert.equal((await curlAs({}, rt.socket, "load", load)).status, 0);
    assert.equal((await curlAs({ groups: [mapGid] }, rt.socket, "load", load)).status, 0);

    // Even where the file's mode lets everyone connect, the runtime checks the peer's credentials.
    await Deno.chmod(rt.socket, 0o666);
    for (const groups of [[], [mapGid]]) {
      const r = await curlAs({ groups }, rt.socket, "load", load);
      assert.equal(r.status, 403, r.body);
      assert.match(r.body, /neither root nor in group bpfd-admin/);
      assert.equal((await curlAs({ groups }, rt.socket, "list", {})).status, 403);
    }
    await Deno.chmod(rt.socket, 0o660);
    assert.deepEqual((await rt.call("list", {})).body.programs, []);

    // A member of bpfd-admin (root-equivalent, documented so) loads; the record names it by uid.
    const r = await curlAs({ groups: [adminGid] }, rt.socket, "load", load);
    assert.equal(r.status, 200, r.body);
    const loadedBy = JSON.parse(r.body).programs[0].program.loadedBy;
    assert.equal(loadedBy.user, "uid:65534");
    assert.equal(loadedBy.uid, 65534);
    assert.equal(loadedBy.gid, 65534);
    assert.equal(loadedBy.via, "unix-socket");
    assert.ok(loadedBy.pid > 1);
  } finally {
    await cleanUp(rt, dir);
  }
  assert.deepEqual(await leftovers(before, ["xdp_counter"]), []);
});

Deno.test("socket: a member of bpfd or bpfd-admin cannot open the state lock, so cannot keep the runtime from starting", async () => {
  const mapGid = await ensureGroup("bpfd"), adminGid = await ensureGroup("bpfd-admin");
  const dir = await Deno.makeTempDir({ prefix: "bpfd-sec-lock-" });
  let rt: RuntimeProcess | undefined;
  try {
    rt = await RuntimeProcess.start(dir);
    await rt.stop();
    rt = undefined;
    const lock = await Deno.stat(`${dir}/lock`);
    assert.equal(lock.mode! & 0o777, 0o600);
    assert.equal(lock.uid, 0);
    // The attacker tries to hold the lock while the runtime is down: it cannot even open the file.
    const hold = await runAs({ groups: [mapGid, adminGid] }, "flock", ["-n", "-s", `${dir}/lock`, "true"]);
    assert.notEqual(hold.code, 0);
    assert.match(hold.err, /Permission denied|cannot open/);
    rt = await RuntimeProcess.start(dir);
    assert.equal((await rt.call("list", {})).status, 200);
  } finally {
    await cleanUp(rt, dir);
  }
});

Deno.test("socket: a POST body that is not declared JSON is refused with 415", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-sec-type-" });
  let rt: RuntimeProcess | undefined;
  try {
    rt = await RuntimeProcess.start(dir);
    for (
      const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
    ) {
      const res = await rt.fetch("/v1/functions/list", {
        method: "POST",
        headers: { "content-type": type },
        body: "{}",
      });
      assert.equal(res.status, 415, type);
    }
    const ok = await rt.fetch("/v1/functions/list", {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8" },
      body: "{}",
    });
    assert.equal(ok.status, 200);
  } finally {
    await cleanUp(rt, dir);
  }
});
