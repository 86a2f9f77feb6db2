/**
 * `get`: one program — bpfd's record and links when it manages it, the kernel's view in any case.
 *
 * @module
 */
import { z } from "../model/zod.ts";
import { defineFunction } from "./_define.ts";
import { notFound } from "./_errors.ts";
import { ProgramId, ProgramView } from "../model/schemas.ts";
import { kernelInfo, managedView } from "./_views.ts";

export const get = defineFunction({
  name: "get",
  summary: "Show one program: bpfd's record, its links and the kernel's view.",
  input: z.strictObject({ programId: ProgramId }),
  output: ProgramView,
  handler({ programId }, ctx) {
    const record = ctx.state.program(programId);
    if (record) return Promise.resolve(managedView(ctx, record));
    const kernel = kernelInfo(ctx, programId);
    if (!kernel) throw notFound("program", programId, { field: "programId" });
    return Promise.resolve({ id: programId, managed: false, kernel, links: [] });
  },
});
