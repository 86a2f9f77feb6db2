/**
 * `pull`: fetches a bytecode image into the node's cache under its pull policy, verifies it (digests,
 * allow-list, cosign signature policy) and tells what it holds: digest, programs and maps from its labels,
 * the signature verdict and the cached object's path.
 *
 * @example
 * ```sh
 * deno task invoke pull '{"url":"quay.io/bpfd-bytecode/xdp_pass:latest","pullPolicy":"Always"}'
 * ```
 * @module
 */
import type { z } from "../model/zod.ts";
import { defineFunction } from "./_define.ts";
import { BpfdError } from "./_errors.ts";
import { ImageSource, PulledImage } from "../model/image.ts";

type Status = ConstructorParameters<typeof BpfdError>[0];

/**
 * Turns an image store failure into the API's error: the status it asks for (registry trouble is 503),
 * code `invalid_argument` for bad input, else the image error's code; `field` prefixed with where the
 * image source sits in the request (e.g. "bytecode.image").
 */
export function imageError(err: unknown, prefix = ""): unknown {
  const e = err as { name?: string; code?: string; field?: string; status?: number; message?: string };
  if (e?.name !== "ImageError" || typeof e.code !== "string") return err;
  const status = (e.status === 502 ? 503 : e.status ?? 500) as Status;
  const field = [prefix, e.field].filter(Boolean).join(".");
  return new BpfdError(
    status,
    status === 400 ? "invalid_argument" : e.code.replaceAll("-", "_"),
    e.message ?? "",
    {
      field,
      reason: e.code,
    },
  );
}

export const pull = defineFunction({
  name: "pull",
  summary: "Pull a bytecode image into the cache, verify it and show its programs, maps and signature.",
  input: ImageSource,
  output: PulledImage,
  async handler(input, ctx) {
    if (!ctx.images) throw new BpfdError(503, "unavailable", "this runtime has no image store configured");
    try {
      return await ctx.images.pull(input);
    } catch (err) {
      throw imageError(err);
    }
  },
});

export type PullInput = z.input<typeof ImageSource>;
