/**
 * Deno compatibility shim for @sigstore/*: Node's crypto.verify(null, data, key, sig) uses the key's
 * default digest (SHA-256 for EC and RSA keys, as OpenSSL defines it), and sigstore-js relies on that for
 * Rekor SETs and checkpoints. Deno 2.9's node:crypto throws "no default digest" instead. This fills in
 * "sha256" for EC and RSA keys when no algorithm is given, and changes nothing else.
 *
 * @example
 * ```ts
 * import "./deno_compat.ts"; // before @sigstore/verify
 * ```
 * @module
 */
import nodeCrypto, { createPublicKey, type KeyObject } from "node:crypto";

const MARK = Symbol.for("bpfd.verifyDefaultDigest");
type VerifyFn = (algorithm: string | null | undefined, ...rest: unknown[]) => boolean;
const target = nodeCrypto as unknown as { verify: VerifyFn & { [MARK]?: true } };

if (!target.verify[MARK]) {
  const original = target.verify;
  const shim = function (
    algorithm: string | null | undefined,
    data: unknown,
    key: unknown,
    sig: unknown,
  ): boolean {
    if (algorithm == null) {
      let type: string | undefined;
      try {
        const k = (key as KeyObject)?.asymmetricKeyType !== undefined
          ? key as KeyObject
          : createPublicKey(key as Parameters<typeof createPublicKey>[0]);
        type = k.asymmetricKeyType;
      } catch { /* leave it to the original to report */ }
      if (type === "ec" || type === "rsa") algorithm = "sha256";
    }
    return original(algorithm, data, key, sig);
  } as VerifyFn & { [MARK]?: true };
  shim[MARK] = true;
  target.verify = shim;
}
