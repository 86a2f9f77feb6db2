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
import type { Ctx } from "./_ctx.ts";
import { defineFunction } from "./_define.ts";
import { pullImage } from "./_images.ts";
import { ImageSource, PulledImage } from "../model/image.ts";

export const pull = defineFunction({
  name: "pull",
  summary: "Pull a bytecode image into the cache, verify it and show its programs, maps and signature.",
  input: ImageSource,
  output: PulledImage,
  handler: pullIntoCache,
});

function pullIntoCache(input: z.output<typeof ImageSource>, ctx: Ctx): Promise<PulledImage> {
  return pullImage(ctx, input);
}

export type PullInput = z.input<typeof ImageSource>;
