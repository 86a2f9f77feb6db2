/**
 * Errors of the image subsystem: a snake_case code saying what went wrong and the field of the image source
 * it concerns. No HTTP status: `functions/_errors.ts` maps codes to statuses.
 *
 * @example
 * ```ts
 * throw new ImageError("not_found", "manifest quay.io/x:v1: not found", { field: "url" });
 * ```
 * @module
 */

/** What went wrong with an image. */
export type ImageErrorCode =
  | "bad_reference" // the url does not parse as an image reference
  | "bad_auth" // credentials given in the request are malformed
  | "bad_config" // the store's configuration (policy, CA files, keys) is unusable
  | "not_found" // registry has no such repository, tag or blob
  | "unauthorized" // registry refused the credentials (or none were given)
  | "registry_unreachable" // connection refused, DNS, TLS, timeout (one message for all)
  | "registry_error" // registry answered with something that is not the protocol, or broke a network rule
  | "digest_mismatch" // content does not hash to the digest that named it
  | "too_large" // a manifest, blob, layer count or unpacked size over the configured limit
  | "bad_image" // not a bpfman bytecode image (no .o, bad labels, unknown media type)
  | "not_cached" // pullPolicy Never and the image is not in the cache
  | "cache_corrupt" // a cache file changed on disk
  | "not_allowed" // reference/digest not on the allow-list
  | "unsigned" // no signature and unsigned images are not allowed
  | "bad_signature" // a signature that does not verify (or a tampered payload)
  | "untrusted_key" // signature valid but by a key/certificate not trusted
  | "identity_mismatch"; // keyless certificate identity or issuer not trusted

/** An image failure: its code, the image source field it concerns ("url", "auth", ...) and a message. */
export class ImageError extends Error {
  readonly code: ImageErrorCode;
  /** The field of the image source the error concerns ("url", "auth", ...). */
  readonly field: string;
  constructor(code: ImageErrorCode, message: string, opts: { field?: string; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = "ImageError";
    this.code = code;
    this.field = opts.field ?? "url";
  }
  /** The error as JSON: message, code and field. */
  toJSON(): { error: string; code: string; field: string } {
    return { error: this.message, code: this.code, field: this.field };
  }
}
