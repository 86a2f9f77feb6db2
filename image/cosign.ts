/**
 * Offline verification of cosign image signatures. cosign stores them as an image tagged
 * sha256-<manifest hex>.sig whose layers (media type application/vnd.dev.cosign.simplesigning.v1+json)
 * are simplesigning payloads naming the image digest, with annotations:
 *   dev.cosignproject.cosign/signature  base64 ECDSA signature over the payload
 *   dev.sigstore.cosign/certificate     PEM Fulcio leaf certificate (keyless)
 *   dev.sigstore.cosign/chain           PEM intermediates/root (keyless)
 *   dev.sigstore.cosign/bundle          Rekor entry: {SignedEntryTimestamp, Payload: {body, integratedTime,
 *                                       logIndex, logID}}
 * Cryptography, certificate chains, SET checks and identity policy are @sigstore/verify's; this file maps
 * cosign's layout onto its bundle model and the outcome onto bpfd's refusal reasons. Nothing is fetched:
 * trust comes from configured keys and a trusted_root.json.
 *
 * @example
 * ```ts
 * const verdict = verifySignatures(sigs, [digest], await loadTrust(policy), "quay.io/x:v1");
 * ```
 * @module
 */
import "./deno_compat.ts";
import { Buffer } from "node:buffer";
import { createHash, createPublicKey, verify as cryptoVerify } from "node:crypto";
import { X509Certificate } from "@sigstore/core";
import { HashAlgorithm, PublicKeyDetails, TrustedRoot } from "@sigstore/protobuf-specs";
import {
  PolicyError,
  toSignedEntity,
  toTrustMaterial,
  type TrustMaterial,
  VerificationError,
  Verifier,
} from "@sigstore/verify";
import { ImageError, type ImageErrorCode } from "./errors.ts";
import type { SignaturePolicy, SignatureResult, TrustedIdentity } from "../model/image.ts";
import { SignaturePolicy as SignaturePolicySchema } from "../model/image.ts";

export const ANN_SIGNATURE = "dev.cosignproject.cosign/signature";
export const ANN_CERTIFICATE = "dev.sigstore.cosign/certificate";
export const ANN_CHAIN = "dev.sigstore.cosign/chain";
export const ANN_BUNDLE = "dev.sigstore.cosign/bundle";
export const SIMPLESIGNING_TYPE = "cosign container image signature";

/** One signature layer of a .sig image. */
export interface CosignSignature {
  payload: Uint8Array;
  annotations: Record<string, string>;
}

interface TrustedKey {
  id: string;
  der: Buffer;
}

export interface Trust {
  keys: TrustedKey[];
  identities: TrustedIdentity[];
  material: TrustMaterial;
  hasRoot: boolean;
  requireSCT: boolean;
  requireTlogForKeys: boolean;
  allowUnsigned: boolean;
  /** Whether anything is trusted at all; when not, signatures are not evaluated. */
  configured: boolean;
}

export function keyFingerprint(der: Uint8Array): string {
  return `sha256:${createHash("sha256").update(der).digest("hex")}`;
}

async function readMaybeFile(v: string, what: string): Promise<string> {
  if (v.trimStart().startsWith("-----BEGIN") || v.trimStart().startsWith("{")) return v;
  try {
    return await Deno.readTextFile(v);
  } catch (e) {
    throw new ImageError("bad_config", `${what}: cannot read ${v}: ${(e as Error).message}`, { field: what });
  }
}

/** Loads keys and the trusted root named by a policy; every problem is a bad_config error. */
export async function loadTrust(policyIn: SignaturePolicy): Promise<Trust> {
  const policy = SignaturePolicySchema.parse(policyIn);
  const keys: TrustedKey[] = [];
  for (const [i, k] of policy.keys.entries()) {
    const pem = await readMaybeFile(k, `signature.keys[${i}]`);
    let der: Buffer;
    try {
      const key = createPublicKey(pem);
      if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
        throw new Error(`a ${key.asymmetricKeyType} key, ECDSA P-256 expected`);
      }
      der = key.export({ type: "spki", format: "der" }) as Buffer;
    } catch (e) {
      throw new ImageError(
        "bad_config",
        `signature.keys[${i}]: not a usable public key: ${(e as Error).message}`,
        {
          field: `signature.keys[${i}]`,
        },
      );
    }
    keys.push({ id: keyFingerprint(der), der });
  }
  let root: TrustedRoot = {
    certificateAuthorities: [],
    timestampAuthorities: [],
    tlogs: [],
    ctlogs: [],
  } as never;
  if (policy.trustedRoot) {
    const text = await readMaybeFile(policy.trustedRoot, "signature.trustedRoot");
    try {
      root = TrustedRoot.fromJSON(JSON.parse(text));
    } catch (e) {
      throw new ImageError(
        "bad_config",
        `signature.trustedRoot: not a trusted_root.json: ${(e as Error).message}`,
        {
          field: "signature.trustedRoot",
        },
      );
    }
  }
  if (policy.identities.length > 0 && (root.certificateAuthorities.length === 0 || root.tlogs.length === 0)) {
    throw new ImageError(
      "bad_config",
      "signature.identities need signature.trustedRoot with a certificate authority and a transparency log",
      { field: "signature.trustedRoot" },
    );
  }
  const keyMap = Object.fromEntries(keys.map((k) => [k.id, {
    rawBytes: k.der,
    keyDetails: PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
  }]));
  let material: TrustMaterial;
  try {
    material = toTrustMaterial(root, keyMap as never);
  } catch (e) {
    throw new ImageError("bad_config", `signature.trustedRoot: unusable: ${(e as Error).message}`, {
      field: "signature.trustedRoot",
    });
  }
  return {
    keys,
    identities: policy.identities,
    material,
    hasRoot: root.tlogs.length > 0,
    requireSCT: policy.requireSCT,
    requireTlogForKeys: policy.requireTlogForKeys,
    allowUnsigned: policy.allowUnsigned,
    configured: keys.length > 0 || policy.identities.length > 0,
  };
}

class Refusal {
  constructor(readonly code: ImageErrorCode, readonly message: string) {}
}

interface RekorBundle {
  SignedEntryTimestamp: string;
  Payload: { body: string; integratedTime: number; logIndex: number; logID: string };
}

function tlogEntry(annotations: Record<string, string>): { entry?: unknown; body?: Record<string, unknown> } {
  const raw = annotations[ANN_BUNDLE];
  if (!raw) return {};
  let b: RekorBundle;
  let body: Record<string, unknown>;
  try {
    b = JSON.parse(raw);
    body = JSON.parse(Buffer.from(b.Payload.body, "base64").toString("utf8"));
  } catch {
    throw new Refusal("bad_signature", "the Rekor bundle annotation is not valid JSON");
  }
  const entry = {
    logIndex: String(b.Payload.logIndex),
    logId: { keyId: Buffer.from(b.Payload.logID, "hex") },
    kindVersion: { kind: String(body.kind), version: String(body.apiVersion) },
    integratedTime: String(b.Payload.integratedTime),
    inclusionPromise: { signedEntryTimestamp: Buffer.from(b.SignedEntryTimestamp, "base64") },
    inclusionProof: undefined,
    canonicalizedBody: Buffer.from(b.Payload.body, "base64"),
  };
  return { entry, body };
}

function bundleFor(sig: CosignSignature, key: { hint: string } | { certDer: Buffer }, tlog: unknown[]) {
  return {
    mediaType: "application/vnd.dev.sigstore.bundle+json;version=0.1",
    verificationMaterial: {
      content: "hint" in key ? { $case: "publicKey", publicKey: { hint: key.hint } } : {
        $case: "x509CertificateChain",
        x509CertificateChain: { certificates: [{ rawBytes: key.certDer }] },
      },
      tlogEntries: tlog,
      timestampVerificationData: undefined,
    },
    content: {
      $case: "messageSignature",
      messageSignature: {
        messageDigest: {
          algorithm: HashAlgorithm.SHA2_256,
          digest: createHash("sha256").update(sig.payload).digest(),
        },
        signature: Buffer.from(sig.annotations[ANN_SIGNATURE], "base64"),
      },
    },
  };
}

function pemToDer(pem: string): Buffer {
  const m = /-----BEGIN [A-Z ]+-----([\s\S]*?)-----END [A-Z ]+-----/.exec(pem);
  if (!m) throw new Refusal("bad_signature", "certificate annotation is not PEM");
  return Buffer.from(m[1].replace(/\s+/g, ""), "base64");
}

/** The public key (SPKI DER) recorded in a hashedrekord body, if any. */
function bodyKeyDer(body: Record<string, unknown> | undefined): Buffer | undefined {
  const spec = body?.spec as { signature?: { publicKey?: { content?: string } } } | undefined;
  const content = spec?.signature?.publicKey?.content;
  if (!content) return undefined;
  const pem = Buffer.from(content, "base64").toString("utf8");
  try {
    if (pem.includes("CERTIFICATE")) {
      return Buffer.from(X509Certificate.parse(pemToDer(pem) as Buffer<ArrayBuffer>).publicKey);
    }
    return createPublicKey(pem).export({ type: "spki", format: "der" }) as Buffer;
  } catch {
    return undefined;
  }
}

function mapError(e: unknown, what: string): Refusal {
  if (e instanceof Refusal) return e;
  if (e instanceof PolicyError) return new Refusal("identity_mismatch", `${what}: ${e.message}`);
  if (e instanceof VerificationError) {
    switch (e.code) {
      case "SIGNATURE_ERROR":
        return new Refusal(
          "bad_signature",
          `${what}: signature does not match the payload (tampered payload?)`,
        );
      case "CERTIFICATE_ERROR":
        return new Refusal(
          "untrusted_key",
          `${what}: certificate does not chain to a trusted certificate authority at signing time (${e.message}${
            e.cause ? `: ${(e.cause as Error).message}` : ""
          })`,
        );
      case "PUBLIC_KEY_ERROR":
        return new Refusal("untrusted_key", `${what}: ${e.message}`);
      case "TLOG_INCLUSION_PROMISE_ERROR":
        return new Refusal(
          "bad_signature",
          `${what}: Rekor signed entry timestamp does not verify against the trusted Rekor key (tampered entry?)`,
        );
      case "TLOG_BODY_ERROR":
        return new Refusal(
          "bad_signature",
          `${what}: Rekor entry does not match the signature (${e.message})`,
        );
      default:
        return new Refusal("bad_signature", `${what}: ${e.code}: ${e.message}`);
    }
  }
  return new Refusal("bad_signature", `${what}: ${(e as Error).message ?? e}`);
}

function checkPayload(sig: CosignSignature, digests: string[], what: string): void {
  let p: { critical?: { type?: string; image?: Record<string, string> } };
  try {
    p = JSON.parse(new TextDecoder().decode(sig.payload));
  } catch {
    throw new Refusal("bad_signature", `${what}: payload is not a simplesigning JSON document`);
  }
  const type = p.critical?.type ?? "";
  if (type.toLowerCase() !== SIMPLESIGNING_TYPE) {
    throw new Refusal(
      "bad_signature",
      `${what}: payload type ${JSON.stringify(type)} is not a cosign signature`,
    );
  }
  const signed = p.critical?.image?.["docker-manifest-digest"];
  if (!signed || !digests.includes(signed)) {
    throw new Refusal(
      "digest_mismatch",
      `${what}: signed digest ${signed ?? "(none)"} is not the image's digest ${digests[0]}`,
    );
  }
}

function anchored(s: string): string {
  return "^" + s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "$";
}

function verifyKeyBased(sig: CosignSignature, trust: Trust, what: string): string {
  const { entry, body } = tlogEntry(sig.annotations);
  const useTlog = entry !== undefined && trust.hasRoot;
  if (trust.requireTlogForKeys && !useTlog) {
    throw new Refusal("bad_signature", `${what}: no verifiable Rekor entry and the policy requires one`);
  }
  if (trust.keys.length === 0) {
    throw new Refusal("untrusted_key", `${what}: key-based signature, but no public keys are trusted`);
  }
  const verifier = new Verifier(trust.material, {
    tlogThreshold: trust.requireTlogForKeys ? 1 : 0,
    ctlogThreshold: 0,
    timestampThreshold: 0,
  });
  const errors: Refusal[] = [];
  for (const k of trust.keys) {
    try {
      const bundle = bundleFor(sig, { hint: k.id }, useTlog ? [entry] : []);
      verifier.verify(toSignedEntity(bundle as never, Buffer.from(sig.payload)));
      return `key ${k.id}`;
    } catch (e) {
      errors.push(mapError(e, what));
    }
  }
  // Not verified by any trusted key. Tell a bad signature from a foreign key where the Rekor entry
  // records the signer's key; without one the two cannot be told apart.
  const nonSig = errors.find((e) => !e.message.includes("signature does not match"));
  if (nonSig) throw nonSig;
  const signerDer = bodyKeyDer(body);
  if (signerDer) {
    const ok = cryptoVerify(
      "sha256",
      sig.payload,
      { key: signerDer, format: "der", type: "spki" },
      Buffer.from(sig.annotations[ANN_SIGNATURE], "base64"),
    );
    if (ok) {
      throw new Refusal(
        "untrusted_key",
        `${what}: signed by key ${
          keyFingerprint(signerDer)
        }, which is not among the ${trust.keys.length} trusted keys`,
      );
    }
    throw new Refusal(
      "bad_signature",
      `${what}: signature does not match the payload under the signer's own key (tampered payload or signature)`,
    );
  }
  throw new Refusal(
    "untrusted_key",
    `${what}: signature does not verify with any of the ${trust.keys.length} trusted keys ` +
      "(signed by another key, or the payload was changed)",
  );
}

function verifyKeyless(sig: CosignSignature, trust: Trust, what: string): string {
  if (!trust.hasRoot || trust.identities.length === 0) {
    throw new Refusal(
      "untrusted_key",
      `${what}: keyless (certificate) signature, but no trusted identities/root`,
    );
  }
  const certDer = pemToDer(sig.annotations[ANN_CERTIFICATE]);
  const { entry, body } = tlogEntry(sig.annotations);
  if (!entry) throw new Refusal("bad_signature", `${what}: keyless signature without a Rekor entry (bundle)`);
  const verifier = new Verifier(trust.material, {
    tlogThreshold: 1,
    ctlogThreshold: trust.requireSCT ? 1 : 0,
    timestampThreshold: 1,
  });
  const entity = toSignedEntity(bundleFor(sig, { certDer }, [entry]) as never, Buffer.from(sig.payload));
  let signer;
  try {
    signer = verifier.verify(entity);
  } catch (e) {
    throw mapError(e, what);
  }
  const cert = X509Certificate.parse(certDer as Buffer<ArrayBuffer>);
  const recorded = bodyKeyDer(body);
  if (!recorded || !recorded.equals(Buffer.from(cert.publicKey))) {
    throw new Refusal("bad_signature", `${what}: Rekor entry records a different key than the certificate's`);
  }
  const san = signer.identity?.subjectAlternativeName ?? "(none)";
  const issuer = signer.identity?.extensions?.issuer ?? "(none)";
  for (const id of trust.identities) {
    try {
      verifier.verify(entity, {
        subjectAlternativeName: id.subject !== undefined ? anchored(id.subject) : `^(?:${id.subjectRegExp})$`,
        extensions: { issuer: id.issuer },
      });
      return `${san} (issuer ${issuer})`;
    } catch (e) {
      if (!(e instanceof PolicyError)) throw mapError(e, what);
    }
  }
  throw new Refusal(
    "identity_mismatch",
    `${what}: certificate identity ${san} with issuer ${issuer} matches none of the trusted identities`,
  );
}

const RANK: ImageErrorCode[] = ["digest_mismatch", "identity_mismatch", "untrusted_key", "bad_signature"];

/**
 * Decides on an image's signatures under the policy. `digests` are the digests a signature may name (the
 * platform manifest's, and the index's when the image came from a list). Throws an ImageError whose
 * code says why it is refused.
 */
export function verifySignatures(
  sigs: CosignSignature[],
  digests: string[],
  trust: Trust,
  image: string,
): SignatureResult {
  if (sigs.length === 0) {
    if (trust.allowUnsigned) return { verified: false, note: "unsigned" };
    throw new ImageError("unsigned", `${image}: no cosign signature, and unsigned images are not allowed`);
  }
  if (!trust.configured) {
    if (trust.allowUnsigned) {
      return {
        verified: false,
        note: "signed, but no trusted keys or identities are configured; not checked",
      };
    }
    throw new ImageError(
      "untrusted_key",
      `${image}: signed, but no trusted keys or identities are configured`,
    );
  }
  const refusals: Refusal[] = [];
  for (const [i, sig] of sigs.entries()) {
    const what = `${image}: signature ${i + 1} of ${sigs.length}`;
    try {
      if (!sig.annotations[ANN_SIGNATURE]) {
        throw new Refusal("bad_signature", `${what}: no signature annotation`);
      }
      const by = sig.annotations[ANN_CERTIFICATE]
        ? verifyKeyless(sig, trust, what)
        : verifyKeyBased(sig, trust, what);
      checkPayload(sig, digests, what);
      return { verified: true, by };
    } catch (e) {
      refusals.push(e instanceof Refusal ? e : mapError(e, what));
    }
  }
  refusals.sort((a, b) => RANK.indexOf(a.code) - RANK.indexOf(b.code));
  const msg = refusals.map((r) => r.message).join("; ");
  throw new ImageError(refusals[0].code, `refused: ${msg}`);
}
