/**
 * zod/mini as bpfd's runtime uses it: English messages (classic zod sets them when imported; mini leaves
 * them to the application), and no parsers generated per schema. The runtime's schemas import `z` from
 * here. They are zod/mini rather than zod's classic API because a classic schema carries some 50 method
 * closures per instance: about 2 MiB more heap for the runtime's schemas.
 *
 * @example
 * ```ts
 * import { z } from "./zod.ts";
 * const Port = z.int().check(z.minimum(1), z.maximum(65535));
 * ```
 * @module
 */
import * as z from "zod/mini";

z.config({ jitless: true, ...z.locales.en() });

export { z };

/** A string that is not empty. */
export const NonEmpty = z.string().check(z.minLength(1));
/** An integer above zero (ids, sizes, time limits). */
export const PositiveInt = z.int().check(z.positive());
