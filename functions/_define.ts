/**
 * How a function is declared and invoked: zod input and output, a handler that sees only its ctx.
 *
 * @example
 * ```ts
 * import { z } from "zod";
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
import type { z } from "zod";
import { BpfdError, fromZod } from "./_errors.ts";
import type { Ctx } from "./_ctx.ts";

/** A function the runtime serves at `POST /v1/functions/<name>`. */
export interface BpfdFunction<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  name: string;
  summary: string;
  input: I;
  output: O;
  handler: (input: z.output<I>, ctx: Ctx) => Promise<z.input<O>>;
}

/** Declares a function (the identity, typed). */
export function defineFunction<I extends z.ZodType, O extends z.ZodType>(
  fn: BpfdFunction<I, O>,
): BpfdFunction<I, O> {
  return fn;
}

/** Validates `input`, runs the handler and validates what it returns. Bad input is a 400 naming the field. */
export async function invoke<I extends z.ZodType, O extends z.ZodType>(
  fn: BpfdFunction<I, O>,
  input: unknown,
  ctx: Ctx,
): Promise<z.output<O>> {
  const parsed = fn.input.safeParse(input ?? {});
  if (!parsed.success) throw fromZod(parsed.error);
  const result = await fn.handler(parsed.data as z.output<I>, ctx);
  const checked = fn.output.safeParse(result);
  if (!checked.success) {
    throw new BpfdError(
      500,
      "internal",
      `function ${fn.name} produced an invalid answer: ${checked.error.message}`,
    );
  }
  return checked.data as z.output<O>;
}
