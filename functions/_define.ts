/**
 * How a function is declared and invoked: zod input and output, a handler that sees only its ctx.
 *
 * @example
 * ```ts
 * import { z } from "../model/zod.ts";
 * export const ping = defineFunction({
 *   name: "ping",
 *   summary: "Answers pong.",
 *   input: z.object({}),
 *   output: z.object({ pong: z.boolean() }),
 *   handler: () => Promise.resolve({ pong: true }),
 * });
 * ```
 * @module
 */
import { z } from "../model/zod.ts";
import { BpfdError, fromKernel, fromZod, type KernelFields } from "./_errors.ts";
import type { Ctx } from "./_ctx.ts";

/** Any zod schema: the runtime's are zod/mini, reconcile's CRD spec is classic zod. */
type Schema = z.core.$ZodType;

/** A function the runtime serves at `POST /v1/functions/<name>`. */
export interface BpfdFunction<I extends Schema = Schema, O extends Schema = Schema> {
  name: string;
  summary: string;
  input: I;
  output: O;
  handler: (input: z.output<I>, ctx: Ctx) => Promise<z.input<O>>;
  /** Where the kernel's objects sit in the input, so that kernel errors name the field. */
  fields?: KernelFields;
  /**
   * false: the answer is not validated on each call, for answers built only from validated records and
   * the kernel's info, whose size grows with the node (`list`); the tests validate them.
   */
  checkOutput?: false;
}

/** Declares a function (the identity, typed). */
export function defineFunction<I extends Schema, O extends Schema>(
  fn: BpfdFunction<I, O>,
): BpfdFunction<I, O> {
  return fn;
}

/**
 * Validates `input`, runs the handler and validates what it returns (unless `fn.checkOutput` is false).
 * Bad input is a 400 naming the field; kernel errors become answers naming the field from `fn.fields`.
 */
export async function invoke<I extends Schema, O extends Schema>(
  fn: BpfdFunction<I, O>,
  input: unknown,
  ctx: Ctx,
): Promise<z.output<O>> {
  const parsed = z.safeParse(fn.input, input ?? {});
  if (!parsed.success) throw fromZod(parsed.error);
  let result: z.input<O>;
  try {
    result = await fn.handler(parsed.data as z.output<I>, ctx);
  } catch (err) {
    throw fromKernel(err, fn.fields);
  }
  if (fn.checkOutput === false) return result as z.output<O>;
  const checked = z.safeParse(fn.output, result);
  if (!checked.success) {
    throw new BpfdError(
      500,
      "internal",
      `function ${fn.name} produced an invalid answer: ${checked.error.message}`,
    );
  }
  return checked.data as z.output<O>;
}
