// Pulling images for handlers without a runtime: the one "no image store" error, image errors mapped to the
// API's statuses and fields, and the digests of loaded programs passed on as in use.
import assert from "node:assert/strict";
import type { Ctx } from "../../../functions/_ctx.ts";
import { BpfdError, fromImageError } from "../../../functions/_errors.ts";
import { pullImage } from "../../../functions/_images.ts";
import { ImageError } from "../../../image/errors.ts";
import type { PulledImage, PullOptions } from "../../../model/image.ts";

const D = `sha256:${"d".repeat(64)}`;

/** A ctx with only what pullImage reads: images and the program records. */
function ctxWith(images: Ctx["images"], digests: string[] = []): Ctx {
  const programs: unknown[] = [
    { bytecode: { path: "/x.o" } },
    ...digests.map((digest) => ({ bytecode: { image: { url: "quay.io/x:v1", digest } } })),
  ];
  return { images, state: { programs: () => programs } } as unknown as Ctx;
}

Deno.test("pullImage: without an image store the answer is 503 unavailable", async () => {
  await assert.rejects(pullImage(ctxWith(undefined), { url: "quay.io/x:v1" }), (e) => {
    assert.ok(e instanceof BpfdError);
    assert.deepEqual([e.status, e.code], [503, "unavailable"]);
    return true;
  });
});

Deno.test("pullImage: the store hears which images recorded programs use; its errors name the field", async () => {
  let seen: string[] = [];
  const pulled = { url: "quay.io/x:v1", digest: D } as PulledImage;
  const ok = ctxWith({
    pull: (_src, opts?: PullOptions) => {
      seen = [...opts?.inUse?.() ?? []];
      return Promise.resolve(pulled);
    },
  }, [D]);
  assert.equal(await pullImage(ok, { url: "quay.io/x:v1" }), pulled);
  assert.deepEqual(seen, [D]);
  const failing = ctxWith({
    pull: () => Promise.reject(new ImageError("not_allowed", "no", { field: "url" })),
  });
  await assert.rejects(pullImage(failing, { url: "quay.io/x:v1" }, "bytecode.image"), (e) => {
    assert.ok(e instanceof BpfdError);
    assert.deepEqual(e.toBody(), {
      error: { code: "not_allowed", message: "no", field: "bytecode.image.url", reason: "not_allowed" },
    });
    assert.equal(e.status, 403);
    return true;
  });
});

Deno.test("image errors: bad input is 400 invalid_argument, registry trouble 503, others keep their code", () => {
  const cases: [ConstructorParameters<typeof ImageError>[0], number, string][] = [
    ["bad_reference", 400, "invalid_argument"],
    ["bad_auth", 400, "invalid_argument"],
    ["not_found", 404, "not_found"],
    ["not_cached", 404, "not_cached"],
    ["too_large", 422, "too_large"],
    ["registry_unreachable", 503, "registry_unreachable"],
    ["registry_error", 503, "registry_error"],
    ["cache_corrupt", 500, "cache_corrupt"],
  ];
  for (const [code, status, apiCode] of cases) {
    const e = fromImageError(new ImageError(code, "m", { field: "auth" }));
    assert.ok(e instanceof BpfdError, code);
    assert.deepEqual([e.status, e.code, e.details.field, e.details.reason], [status, apiCode, "auth", code]);
  }
  const other = new Error("not an image error");
  assert.equal(fromImageError(other), other);
});
