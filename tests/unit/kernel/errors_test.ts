/** The kernel layer's errors, without a kernel. */
import assert from "node:assert/strict";
import { LibbpfError, SysError } from "../../../ffi/errno.ts";
import { asKernelError, conflict, KernelError, notFound, refused } from "../../../kernel/errors.ts";

Deno.test("kernel errors: not_found names the object and carries its name under the object's key", () => {
  const err = notFound("interface", "eth9", { netns: "blue" });
  assert.equal(err.kind, "not_found");
  assert.equal(err.object, "interface");
  assert.equal(err.message, "interface eth9 not found");
  assert.deepEqual(err.details, { interface: "eth9", netns: "blue" });
  assert.equal(conflict("hook", "taken").kind, "conflict");
});

Deno.test("kernel errors: a refused libbpf call carries errno, libbpf's messages, the verifier log and a hint", () => {
  const cause = new LibbpfError("load x.o", 13, ["libbpf: prog 'p': failed"], "R1 invalid mem access");
  const err = refused(cause, "load p", "try again");
  assert.equal(err.kind, "kernel_refused");
  assert.equal(err.message, "the kernel refused to load p: EACCES — try again");
  assert.deepEqual(err.details, {
    errno: "EACCES",
    libbpfLog: ["libbpf: prog 'p': failed"],
    verifierLog: "R1 invalid mem access",
  });
  assert.equal(err.cause, cause);
});

Deno.test("kernel errors: refused passes kernel errors through and rethrows anything that is not a failed call", () => {
  const own = notFound("program", 7);
  assert.equal(refused(own, "attach"), own);
  const bug = new TypeError("a bug");
  assert.throws(() => refused(bug, "attach"), (e) => e === bug);
});

Deno.test("kernel errors: asKernelError wraps failed calls, named by the call, and nothing else", () => {
  const sys = asKernelError(new SysError("perf_event_open", 3));
  assert.ok(sys instanceof KernelError);
  assert.equal(sys.message, "the kernel refused to perf_event_open: ESRCH");
  assert.equal(asKernelError(new LibbpfError("pin /x", 17))?.details.errno, "EEXIST");
  assert.equal(asKernelError(new Error("other")), undefined);
});
