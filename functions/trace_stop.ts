/**
 * `trace_stop`: ends a running trace session early, as its time limit would — bpftrace gets SIGINT and
 * prints its maps into the session's stream, which then ends with reason `stopped`. Only the user who
 * started the session may stop it (others get 403); an unknown or ended session is a 404.
 *
 * @example
 * ```sh
 * deno task invoke trace_stop '{"session":"2ccad554"}'
 * ```
 * @module
 */
import { NonEmpty, z } from "../model/zod.ts";
import { defineFunction } from "./_define.ts";
import { BpfdError, notFound } from "./_errors.ts";
import type { Ctx } from "./_ctx.ts";

const StopInput = z.strictObject({ session: NonEmpty });
type StopInput = z.output<typeof StopInput>;

export const traceStop = defineFunction({
  name: "trace_stop",
  summary: "End a trace session you started: bpftrace prints its maps into the session's stream.",
  input: StopInput,
  output: z.object({ session: z.string(), stopping: z.boolean() }),
  handler: stopTrace,
});

function stopTrace({ session }: StopInput, ctx: Ctx): Promise<{ session: string; stopping: boolean }> {
  const outcome = ctx.traces?.stop(session, ctx.caller) ?? "not_found";
  if (outcome === "not_found") throw notFound("session", session, { field: "session" });
  if (outcome === "not_yours") {
    throw new BpfdError(403, "forbidden", `session ${session} was started by someone else`, {
      field: "session",
    });
  }
  ctx.log.info("trace session stopped", { session, user: ctx.caller.user });
  return Promise.resolve({ session, stopping: true });
}
