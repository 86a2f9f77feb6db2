/**
 * The errors functions raise. Each carries the HTTP status the runtime answers with and a body that
 * names what was wrong: the field for bad input, the errno and verifier log when the kernel refused.
 *
 * @module
 */
import type { z } from "../model/zod.ts";

/** The JSON body of every error answer. */
export interface ErrorBody {
  error: {
    code: string;
    message: string;
    field?: string;
    issues?: Array<{ field: string; message: string }>;
    errno?: string;
    verifierLog?: string;
    libbpfLog?: string[];
    [key: string]: unknown;
  };
}

/** An error with an HTTP status: 400 bad input, 404 missing, 409 conflict, 422 kernel refusal. */
export class BpfdError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 422 | 500 | 503,
    readonly code: string,
    message: string,
    readonly details: Omit<ErrorBody["error"], "code" | "message"> = {},
  ) {
    super(message);
    this.name = "BpfdError";
  }

  /** The answer's body. */
  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }
}

/** 400 for one field: `invalid("attach.iface", "no such interface eth9")`. */
export function invalid(field: string, reason: string): BpfdError {
  return new BpfdError(400, "invalid_argument", `${field}: ${reason}`, { field });
}

/** 404: `notFound("program", 42)`. */
export function notFound(
  what: string,
  name: string | number,
  details: Record<string, unknown> = {},
): BpfdError {
  return new BpfdError(404, "not_found", `${what} ${name} not found`, { [what]: name, ...details });
}

/** 409: the request conflicts with what is there (a hook in use, a map still shared). */
export function conflict(message: string, details: Omit<ErrorBody["error"], "code" | "message"> = {}) {
  return new BpfdError(409, "conflict", message, details);
}

/** 400 from a zod failure, naming every field (`programs.0.name: ...`). */
export function fromZod(error: z.core.$ZodError, prefix = ""): BpfdError {
  const issues = error.issues.map((issue) => ({
    field: [prefix, ...issue.path.map(String)].filter(Boolean).join(".") || "(body)",
    message: issue.message,
  }));
  const first = issues[0];
  return new BpfdError(400, "invalid_argument", issues.map((i) => `${i.field}: ${i.message}`).join("; "), {
    field: first?.field,
    issues,
  });
}
