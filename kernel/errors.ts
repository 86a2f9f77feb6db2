/**
 * The kernel layer's errors, in domain terms: what kind of failure, about which object, and the errno and
 * logs when the kernel refused. No HTTP status and no request field: functions/_errors.ts maps them.
 *
 * @example
 * ```ts
 * throw new KernelError("not_found", "interface", "interface eth9 not found", { name: "eth9" });
 * ```
 * @module
 */
import { hasErrno, LibbpfError } from "../ffi/errno.ts";

/** What went wrong. */
export type KernelErrorKind =
  | "not_found"
  | "conflict"
  | "invalid"
  | "invalid_object"
  /** A program's recorded object file no longer holds what was loaded from it (its SHA-256 differs). */
  | "object_changed"
  | "kernel_refused"
  | "kernel_unsupported";

/** What a kernel error carries beside its message. */
export interface KernelErrorDetails {
  /** The errno name, when a call failed. */
  errno?: string;
  libbpfLog?: string[];
  verifierLog?: string;
  /** Which entry of a request's plan it is about: a program's index, a global variable's name. */
  at?: number | string;
  /** Further facts for the answer's body (`{ iface: "eth0", programId: 7 }`). */
  [key: string]: unknown;
}

/** A failure of the kernel layer: `kind` of failure, `object` it is about ("interface", "program", ...). */
export class KernelError extends Error {
  constructor(
    readonly kind: KernelErrorKind,
    readonly object: string,
    message: string,
    readonly details: KernelErrorDetails = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "KernelError";
  }
}

/** `<object> <name> not found`, with the name under the object's key (`{ interface: "eth9" }`). */
export function notFound(
  object: string,
  name: string | number,
  details: KernelErrorDetails = {},
): KernelError {
  return new KernelError("not_found", object, `${object} ${name} not found`, { [object]: name, ...details });
}

/** A conflict with what is on the hook (another manager's program, a full dispatcher, a race). */
export function conflict(
  object: string,
  message: string,
  details: KernelErrorDetails = {},
  options?: ErrorOptions,
): KernelError {
  return new KernelError("conflict", object, message, details, options);
}

/**
 * The kernel refused `what`: a {@link KernelError} with errno, libbpf's messages and the verifier log.
 * KernelErrors pass through; anything that is not a failed call is rethrown as it is.
 */
export function refused(err: unknown, what: string, hint?: string): KernelError {
  if (err instanceof KernelError) return err;
  if (!hasErrno(err)) throw err;
  const log = err instanceof LibbpfError ? err : undefined;
  return new KernelError(
    "kernel_refused",
    "kernel",
    `the kernel refused to ${what}: ${err.code}${hint ? ` — ${hint}` : ""}`,
    {
      errno: err.code,
      ...(log?.libbpfLog.length ? { libbpfLog: log.libbpfLog } : {}),
      ...(log?.verifierLog ? { verifierLog: log.verifierLog } : {}),
    },
    { cause: err },
  );
}

/**
 * `err` as a kernel error: itself, or a failed libbpf or system call that reached a caller unwrapped
 * (kernel_refused, named by the call); undefined for anything else.
 */
export function asKernelError(err: unknown): KernelError | undefined {
  if (err instanceof KernelError) return err;
  if (hasErrno(err)) return refused(err, err instanceof LibbpfError ? err.op : err.call);
  return undefined;
}
