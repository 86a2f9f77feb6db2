// Errors of the image subsystem: each has a code saying what went wrong, the input field it concerns, and
// the HTTP status the runtime should answer with.

export type ImageErrorCode =
  | "bad-reference" // the url does not parse as an image reference
  | "bad-auth" // credentials given in the request are malformed
  | "bad-config" // the store's configuration (policy, CA files, keys) is unusable
  | "not-found" // registry has no such repository, tag or blob
  | "unauthorized" // registry refused the credentials (or none were given)
  | "registry-unreachable" // connection refused, DNS, TLS, timeout
  | "registry-error" // registry answered with something that is not the protocol
  | "digest-mismatch" // content does not hash to the digest that named it
  | "too-large" // a manifest or blob over the configured limit
  | "bad-image" // not a bpfman bytecode image (no .o, bad labels, unknown media type)
  | "not-cached" // pullPolicy Never and the image is not in the cache
  | "cache-corrupt" // a cache file changed on disk
  | "not-allowed" // reference/digest not on the allow-list
  | "unsigned" // no signature and unsigned images are not allowed
  | "bad-signature" // a signature that does not verify (or a tampered payload)
  | "untrusted-key" // signature valid but by a key/certificate not trusted
  | "identity-mismatch"; // keyless certificate identity or issuer not trusted

const STATUS: Record<ImageErrorCode, number> = {
  "bad-reference": 400,
  "bad-auth": 400,
  "bad-config": 500,
  "not-found": 404,
  "unauthorized": 403,
  "registry-unreachable": 502,
  "registry-error": 502,
  "digest-mismatch": 422,
  "too-large": 422,
  "bad-image": 422,
  "not-cached": 404,
  "cache-corrupt": 500,
  "not-allowed": 403,
  "unsigned": 403,
  "bad-signature": 403,
  "untrusted-key": 403,
  "identity-mismatch": 403,
};

export class ImageError extends Error {
  readonly code: ImageErrorCode;
  /** The field of the image source the error concerns ("url", "auth", ...). */
  readonly field: string;
  readonly status: number;
  constructor(code: ImageErrorCode, message: string, opts: { field?: string; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = "ImageError";
    this.code = code;
    this.field = opts.field ?? "url";
    this.status = STATUS[code];
  }
  toJSON(): { error: string; code: string; field: string } {
    return { error: this.message, code: this.code, field: this.field };
  }
}
