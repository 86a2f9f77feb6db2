/** errno names and the one helper that tests errors for them. */
import assert from "node:assert/strict";
import { errno, errnoName, hasErrno, LibbpfError, SysError } from "../../../ffi/errno.ts";

Deno.test("errno: names and values convert both ways; unknown values keep their number", () => {
  assert.equal(errnoName(2), "ENOENT");
  assert.equal(errnoName(-1), "EPERM");
  assert.equal(errnoName(4242), "errno 4242");
  assert.equal(errno("EEXIST"), 17);
  assert.throws(() => errno("ENOPE"), /unknown errno name/);
});

Deno.test("errno: hasErrno matches failed libc and libbpf calls by name, nothing else", () => {
  const libbpf = new LibbpfError("open pin /x", 2, ["libbpf: no such file"]);
  assert.equal(libbpf.message, "open pin /x: ENOENT (libbpf: no such file)");
  assert.ok(hasErrno(libbpf, "ENOENT"));
  assert.ok(hasErrno(libbpf, "ENODEV", "ENOENT"));
  assert.ok(!hasErrno(libbpf, "EPERM"));
  assert.ok(hasErrno(new SysError("setns", 1), "EPERM"));
  assert.ok(hasErrno(new SysError("setns", 1)), "without names: any errno");
  assert.ok(!hasErrno(Object.assign(new Error("x"), { code: "ENOENT" }), "ENOENT"));
  assert.ok(!hasErrno(undefined, "ENOENT"));
});
