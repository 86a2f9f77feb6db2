/**
 * Bytecode images for handlers: the one place that says the runtime has no image store, turns image errors
 * into API errors naming the request field, and tells the store which images loaded programs still use
 * (cache eviction keeps those).
 *
 * @example
 * ```ts
 * const pulled = await pullImage(ctx, bytecode.image, "bytecode.image");
 * ```
 * @module
 */
import type { Ctx } from "./_ctx.ts";
import { BpfdError, fromImageError } from "./_errors.ts";
import type { ImageSource, PulledImage } from "../model/image.ts";

/** Pulls `source` through ctx.images; errors name `field` (where the source sits in the request). */
export async function pullImage(ctx: Ctx, source: ImageSource, field = ""): Promise<PulledImage> {
  if (!ctx.images) throw new BpfdError(503, "unavailable", "this runtime has no image store configured");
  try {
    return await ctx.images.pull(source, { inUse: () => imagesInUse(ctx) });
  } catch (err) {
    throw fromImageError(err, field);
  }
}

/** The digest `source` names now (a manifest HEAD for a tag); errors name `field`. */
export async function resolveImage(ctx: Ctx, source: ImageSource, field = ""): Promise<string> {
  if (!ctx.images?.resolve) {
    throw new BpfdError(503, "unavailable", "this runtime has no image store configured");
  }
  try {
    return await ctx.images.resolve(source);
  } catch (err) {
    throw fromImageError(err, field);
  }
}

/** Digests of the images that recorded programs were loaded from. */
function imagesInUse(ctx: Ctx): string[] {
  return ctx.state.programs().flatMap((p) => "image" in p.bytecode ? [p.bytecode.image.digest] : []);
}
