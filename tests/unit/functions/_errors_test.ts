/** How kernel failures become answers, without a kernel. */
import assert from "node:assert/strict";
import { LibbpfError } from "../../../ffi/errno.ts";
import { BpfdError, fromKernel } from "../../../functions/_errors.ts";
import { conflict, KernelError, notFound } from "../../../kernel/errors.ts";

const answer = (err: unknown, fields = {}) => {
  const mapped = fromKernel(err, fields);
  assert.ok(mapped instanceof BpfdError);
  return { status: mapped.status, ...mapped.toBody().error };
};

Deno.test("kernel errors as answers: not_found is a 404 naming the request field the function gives", () => {
  assert.deepEqual(answer(notFound("interface", "eth9"), { interface: "attach.iface" }), {
    status: 404,
    code: "not_found",
    message: "interface eth9 not found",
    field: "attach.iface",
    interface: "eth9",
  });
});

Deno.test("kernel errors as answers: invalid input is a 400 invalid_argument, the message led by the field", () => {
  const err = new KernelError("invalid", "global", "no global variable nope in the object", { at: "nope" });
  assert.deepEqual(answer(err, { global: (name: string | number) => `globalData.${name}` }), {
    status: 400,
    code: "invalid_argument",
    message: "globalData.nope: no global variable nope in the object",
    field: "globalData.nope",
  });
});

Deno.test("kernel errors as answers: conflicts are 409, refusals 422, with errno and no field", () => {
  assert.deepEqual(answer(conflict("hook", "taken", { errno: "EBUSY" }), { interface: "attach.iface" }), {
    status: 409,
    code: "conflict",
    message: "taken",
    errno: "EBUSY",
  });
  const refused = answer(new LibbpfError("attach tc filter on ifindex 3", 1));
  assert.equal(refused.status, 422);
  assert.equal(refused.code, "kernel_refused");
  assert.equal(refused.errno, "EPERM");
  assert.match(refused.message, /the kernel refused to attach tc filter on ifindex 3: EPERM/);
});

Deno.test("kernel errors as answers: anything else passes through unchanged", () => {
  const bug = new TypeError("a bug");
  assert.equal(fromKernel(bug), bug);
});
