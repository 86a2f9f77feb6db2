/**
 * The errors functions raise, and the one place where lower layers' errors become answers: each carries
 * the HTTP status the runtime answers with and a body that names what was wrong — the request field for
 * bad input, the errno and verifier log when the kernel refused.
 *
 * @module
 */
import { asKernelError, type KernelErrorKind } from "../kernel/errors.ts";
import type { z } from "../model/zod.ts";
import { ImageError, type ImageErrorCode } from "../image/errors.ts";

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
    readonly status: 400 | 401 | 403 | 404 | 409 | 422 | 429 | 500 | 503,
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

/**
 * Where the kernel's objects sit in a function's input: object → field (`interface: "attach.iface"`), or a
 * field per plan entry (`program: (i) => \`programs.${i}.name\``).
 */
export type KernelFields = Record<string, string | ((at: number | string) => string)>;

const KERNEL_STATUS: Record<KernelErrorKind, BpfdError["status"]> = {
  not_found: 404,
  conflict: 409,
  invalid: 400,
  invalid_object: 400,
  object_changed: 409,
  kernel_refused: 422,
  kernel_unsupported: 422,
};

/**
 * The answer for a kernel failure, naming the request field from `fields`: a {@link KernelError}, or a
 * libbpf or system call failure that reached a function unwrapped (422 kernel_refused). Anything else is
 * returned as it is.
 */
export function fromKernel(err: unknown, fields: KernelFields = {}): unknown {
  const kernel = asKernelError(err);
  if (!kernel) return err;
  const { at, ...details } = kernel.details;
  const entry = fields[kernel.object];
  const field = typeof entry === "function" ? (at === undefined ? undefined : entry(at)) : entry;
  const invalid = kernel.kind === "invalid" || kernel.kind === "invalid_object";
  return new BpfdError(
    KERNEL_STATUS[kernel.kind],
    kernel.kind === "invalid" ? "invalid_argument" : kernel.kind,
    invalid && field ? `${field}: ${kernel.message}` : kernel.message,
    { ...(field ? { field } : {}), ...details },
  );
}

/** The status of each image error code: bad input 400, refusals 403, registry trouble 503. */
const IMAGE_STATUS: Record<ImageErrorCode, BpfdError["status"]> = {
  bad_reference: 400,
  bad_auth: 400,
  bad_config: 500,
  not_found: 404,
  unauthorized: 403,
  registry_unreachable: 503,
  registry_error: 503,
  digest_mismatch: 422,
  too_large: 422,
  bad_image: 422,
  not_cached: 404,
  cache_corrupt: 500,
  not_allowed: 403,
  unsigned: 403,
  bad_signature: 403,
  untrusted_key: 403,
  identity_mismatch: 403,
};

/**
 * An image store failure as the API's error: its status, code `invalid_argument` for bad input else the
 * image error's code (also given as `reason`), `field` prefixed with where the image source sits in the
 * request (e.g. "bytecode.image"). Anything else is returned as is.
 */
export function fromImageError(err: unknown, prefix = ""): unknown {
  if (!(err instanceof ImageError)) return err;
  const status = IMAGE_STATUS[err.code];
  const field = [prefix, err.field].filter(Boolean).join(".");
  const code = status === 400 ? "invalid_argument" : err.code;
  return new BpfdError(status, code, err.message, { field, reason: err.code });
}
