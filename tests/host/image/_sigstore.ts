// A stand-in for Sigstore's public services, made per test with its own keys: a "Fulcio" CA (openssl) that
// issues short-lived code-signing certificates with an identity and the Fulcio issuer extension, a
// "Rekor" key that signs entry timestamps (SETs) over hashedrekord entries, and the trusted_root.json an
// air-gapped node would be given. Signing helpers produce exactly what cosign attaches to an image.
import { Buffer } from "node:buffer";
import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { join } from "node:path";
import { json } from "@sigstore/core";
import { ANN_BUNDLE, ANN_CERTIFICATE, ANN_CHAIN } from "../../../image/cosign.ts";
import { makePki, type Pki } from "../../_registry.ts";

export interface KeyPair {
  privatePem: string;
  publicPem: string;
  key: KeyObject;
  spkiDer: Buffer;
}

export function newKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return {
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    publicPem: publicKey.export({ type: "spki", format: "pem" }) as string,
    key: privateKey,
    spkiDer: publicKey.export({ type: "spki", format: "der" }) as Buffer,
  };
}

export function signWith(privatePem: string, payload: Uint8Array): Uint8Array {
  return new Uint8Array(sign("sha256", payload, createPrivateKey(privatePem)));
}

function derOfPem(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
}

export class TestSigstore {
  readonly rekor = newKeyPair();
  #logIndex = 1000;
  private constructor(readonly dir: string, readonly fulcio: Pki) {}

  static async create(dir: string): Promise<TestSigstore> {
    return new TestSigstore(dir, await makePki(dir, "bpfd test fulcio root"));
  }

  get logID(): string {
    return createHash("sha256").update(this.rekor.spkiDer).digest("hex");
  }

  /** Writes trusted_root.json (Fulcio root + Rekor key) and returns its path. */
  async trustedRoot(opts: { rekorKey?: Buffer } = {}): Promise<string> {
    const rekorKey = opts.rekorKey ?? this.rekor.spkiDer;
    const root = {
      mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
      tlogs: [{
        baseUrl: "https://rekor.invalid",
        hashAlgorithm: "SHA2_256",
        publicKey: {
          rawBytes: rekorKey.toString("base64"),
          keyDetails: "PKIX_ECDSA_P256_SHA_256",
          validFor: { start: "2020-01-01T00:00:00Z" },
        },
        logId: { keyId: createHash("sha256").update(rekorKey).digest("base64") },
      }],
      certificateAuthorities: [{
        subject: { organization: "bpfd test", commonName: "fulcio" },
        uri: "https://fulcio.invalid",
        certChain: {
          certificates: [{
            rawBytes: derOfPem(await Deno.readTextFile(this.fulcio.caCert)).toString("base64"),
          }],
        },
        validFor: { start: "2020-01-01T00:00:00Z" },
      }],
      ctlogs: [],
      timestampAuthorities: [],
    };
    const path = join(this.dir, `trusted_root-${crypto.randomUUID()}.json`);
    await Deno.writeTextFile(path, JSON.stringify(root));
    return path;
  }

  /** A Fulcio-style leaf certificate for `subject` (email or URI) from OIDC `issuer`; [certPem, keyPem]. */
  async certificate(subject: string, issuer: string): Promise<[string, string]> {
    const name = `leaf-${crypto.randomUUID()}`;
    const san = subject.includes("://") ? `URI:${subject}` : `email:${subject}`;
    const [crt, key] = await this.fulcio.issue(
      name,
      `subjectAltName=critical,${san}\n` +
        `1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:${issuer}\n` +
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nbasicConstraints=critical,CA:FALSE\n" +
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n",
      "/O=sigstore.dev",
    );
    return [await Deno.readTextFile(crt), await Deno.readTextFile(key)];
  }

  /** cosign's dev.sigstore.cosign/bundle: a hashedrekord entry for (payload, signature, key or cert) + SET. */
  rekorBundle(
    payload: Uint8Array,
    signature: Uint8Array,
    publicKeyOrCertPem: string,
    opts: { signer?: KeyObject; integratedTime?: number } = {},
  ): string {
    const body = json.canonicalize({
      apiVersion: "0.0.1",
      kind: "hashedrekord",
      spec: {
        data: { hash: { algorithm: "sha256", value: createHash("sha256").update(payload).digest("hex") } },
        signature: {
          content: Buffer.from(signature).toString("base64"),
          publicKey: { content: Buffer.from(publicKeyOrCertPem).toString("base64") },
        },
      },
    });
    const entry = {
      body: Buffer.from(body).toString("base64"),
      integratedTime: opts.integratedTime ?? Math.floor(Date.now() / 1000),
      logIndex: this.#logIndex++,
      logID: this.logID,
    };
    const set = sign("sha256", Buffer.from(json.canonicalize(entry)), opts.signer ?? this.rekor.key);
    return JSON.stringify({ SignedEntryTimestamp: set.toString("base64"), Payload: entry });
  }

  /** The annotations of a keyless signature: certificate, chain and Rekor bundle. */
  keylessAnnotations(payload: Uint8Array, signature: Uint8Array, certPem: string, chainPem: string) {
    return {
      [ANN_CERTIFICATE]: certPem,
      [ANN_CHAIN]: chainPem,
      [ANN_BUNDLE]: this.rekorBundle(payload, signature, certPem),
    };
  }
}
