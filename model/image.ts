/**
 * Zod schemas and types for bytecode images: the `bytecode.image` source that load and pull take, the image
 * store's configuration (cache, registries, signature policy) and what a pull returns.
 *
 * @example
 * ```ts
 * const src = ImageSource.parse({ url: "quay.io/bpfd-bytecode/xdp_pass:latest" });
 * ```
 * @module
 */
import { NonEmpty, PositiveInt, z } from "./zod.ts";

export const PullPolicy = z.enum(["Always", "IfNotPresent", "Never"]);
export type PullPolicy = z.infer<typeof PullPolicy>;

const NonEmptyList = z._default(z.array(NonEmpty), []);

/** Credentials for one pull: a username/password pair, or a Kubernetes pull secret by reference. */
export const ImageAuth = z.union([
  z.strictObject({
    username: z.string().check(z.minLength(1, "username must not be empty")),
    password: z.string(),
  }),
  z.strictObject({
    secretRef: z.strictObject({
      name: NonEmpty,
      namespace: z.optional(NonEmpty),
    }),
  }),
  /** The contents of a docker config.json / `.dockerconfigjson` (the `auths` map). */
  z.strictObject({ dockerConfigJson: z.string().check(z.minLength(2)) }),
]);
export type ImageAuth = z.infer<typeof ImageAuth>;

// A loose pre-check; reference.ts parses the full grammar and names what is wrong.
const urlField = z.string().check(
  z.minLength(1, "image url must not be empty"),
  z.maxLength(4096, "image url longer than 4096 characters"),
);

export const ImageSource = z.strictObject({
  /** An image reference: [registry[:port]/]repository[:tag][@sha256:digest]. */
  url: urlField,
  pullPolicy: z._default(PullPolicy, "IfNotPresent"),
  auth: z.optional(ImageAuth),
});
export type ImageSource = z.input<typeof ImageSource>;
export type ImageSourceParsed = z.output<typeof ImageSource>;

/** A trusted signer identity for keyless (Fulcio certificate) signatures. */
export const TrustedIdentity = z.strictObject({
  /** The certificate's subject alternative name (email or URI), matched exactly. */
  subject: z.optional(NonEmpty),
  /** Or a regular expression the whole subject must match. */
  subjectRegExp: z.optional(NonEmpty),
  /** The OIDC issuer recorded in the certificate (Fulcio extension), matched exactly. */
  issuer: NonEmpty,
}).check(z.refine((v) => (v.subject === undefined) !== (v.subjectRegExp === undefined), {
  message: "exactly one of subject and subjectRegExp must be set",
}));
export type TrustedIdentity = z.infer<typeof TrustedIdentity>;

export const SignaturePolicy = z.strictObject({
  /**
   * Whether an image that carries no cosign signature may be used. A present signature that does not
   * verify against the trusted keys/identities is refused whatever this says.
   */
  allowUnsigned: z._default(z.boolean(), true),
  /** PEM-encoded public keys (ECDSA P-256), inline or as file paths, for key-based signatures. */
  keys: NonEmptyList,
  /** Identities trusted for keyless signatures; needs trustedRoot. */
  identities: z._default(z.array(TrustedIdentity), []),
  /**
   * A sigstore trusted_root.json (path), the offline trust root: Fulcio CA certificates, Rekor public
   * keys, optionally CT log keys. Nothing is fetched.
   */
  trustedRoot: z.optional(NonEmpty),
  /** Require an SCT from a CT log of the trusted root in keyless certificates. */
  requireSCT: z._default(z.boolean(), false),
  /** Require a Rekor entry (SET) for key-based signatures too (keyless always needs one). */
  requireTlogForKeys: z._default(z.boolean(), false),
});
export type SignaturePolicy = z.input<typeof SignaturePolicy>;

export const ImageStoreConfig = z.strictObject({
  /** Content-addressed cache directory. */
  cacheDir: z._default(NonEmpty, "/var/lib/bpfd/images"),
  /** Registries (host[:port]) reached over plain HTTP. Everything else is HTTPS. */
  insecureRegistries: NonEmptyList,
  /** Extra CA certificates (PEM file paths) trusted for registry TLS. */
  caFiles: NonEmptyList,
  /** A docker config.json with credentials per registry, used when a request carries none. */
  authFile: z.optional(NonEmpty),
  /**
   * Allow-list: an image is used only if an entry admits it: a registry host[:port], a repository prefix
   * matched on whole path components ("quay.io/bpfd-bytecode"), one repository with a tag or digest, or a
   * bare digest ("sha256:..."). Empty = all allowed. See docs/images-security.md.
   */
  allow: NonEmptyList,
  /** Hosts (host or host:port) trusted as bearer token realms besides the registry's own host. */
  realmHosts: NonEmptyList,
  /** Hosts blob downloads may be redirected to (HTTPS only). Empty = any host but internal addresses. */
  redirectHosts: NonEmptyList,
  signature: z._default(SignaturePolicy, {
    allowUnsigned: true,
    keys: [],
    identities: [],
    requireSCT: false,
    requireTlogForKeys: false,
  }),
  /** Largest manifest, index or config accepted, in bytes. */
  maxManifestBytes: z._default(PositiveInt, 4 * 1024 * 1024),
  /** Largest layer accepted, in bytes as downloaded (compressed). */
  maxLayerBytes: z._default(PositiveInt, 64 * 1024 * 1024),
  /** Most bytes an image's layers may unpack to, all layers together (a gzip bomb stops there). */
  maxUnpackedBytes: z._default(PositiveInt, 256 * 1024 * 1024),
  /** Most layers an image may have (and signature layers a .sig manifest). */
  maxLayers: z._default(PositiveInt, 16),
  /** Cache size above which the least recently used images are evicted, in bytes. */
  cacheMaxBytes: z._default(PositiveInt, 1024 * 1024 * 1024),
  /** Images not used for this many days are evicted. */
  cacheMaxAgeDays: z._default(PositiveInt, 30),
  /** Time limit for one registry request, in milliseconds. */
  timeoutMs: z._default(PositiveInt, 30_000),
  /** Platform chosen from manifest lists; unset: this node's own (Deno.build.arch in OCI names). */
  platform: z.optional(
    z.object({ os: z.string(), architecture: z.string(), variant: z.optional(z.string()) }),
  ),
});
export type ImageStoreConfig = z.input<typeof ImageStoreConfig>;
export type ImageStoreConfigParsed = z.output<typeof ImageStoreConfig>;

export const SignatureResult = z.object({
  verified: z.boolean(),
  /** Who signed: the key's fingerprint ("key sha256:...") or the certificate identity and issuer. */
  by: z.optional(z.string()),
  /** Why nothing was verified (unsigned and allowed, or no trust configured). */
  note: z.optional(z.string()),
});
export type SignatureResult = z.infer<typeof SignatureResult>;

export const PulledImage = z.object({
  url: z.string(),
  /** Digest of the (platform) image manifest the object came from. */
  digest: z.string(),
  /** Path of the verified .o in the cache. */
  objectPath: z.string(),
  /** All .o files of the image, by file name, when there is more than one. */
  objects: z.record(z.string(), z.string()),
  /** Function name -> program type, from io.ebpf.programs or the older single-program labels. */
  programs: z.record(z.string(), z.string()),
  /** Map name -> map type, from io.ebpf.maps. */
  maps: z.record(z.string(), z.string()),
  signature: z.optional(SignatureResult),
  /** Whether the registry was contacted (false: served from cache). */
  fromCache: z.boolean(),
});
export type PulledImage = z.infer<typeof PulledImage>;

export type PullProgress =
  | { phase: "resolve"; url: string }
  | { phase: "manifest"; digest: string }
  | { phase: "blob"; digest: string; done: number; total: number }
  | { phase: "verify"; what: string }
  | { phase: "cached"; digest: string }
  | { phase: "done"; digest: string };

export interface PullOptions {
  onProgress?: (p: PullProgress) => void;
  /** Resolves a Kubernetes pull secret reference to the secret's .dockerconfigjson contents. */
  resolveSecret?: (ref: { name: string; namespace?: string }) => Promise<string>;
  /**
   * Digests of the images loaded programs still use. A pull that passes this lets the store evict old
   * images from its cache afterwards; these are never evicted.
   */
  inUse?: () => Iterable<string>;
}

export interface ImageStore {
  pull(src: ImageSource, opts?: PullOptions): Promise<PulledImage>;
  /** The digest a reference names now (a manifest HEAD for a tag; no download, no cache change). */
  resolve(src: ImageSource, opts?: PullOptions): Promise<string>;
}
