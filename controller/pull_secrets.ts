/**
 * The pull secrets configs name (`bytecode.imagepullsecret`), read by the controller with its own RBAC
 * and kept in memory briefly, so a resync of 1,000 nodes reads each Secret once. The node gets the
 * `.dockerconfigjson` with the reconcile call and never writes it to disk.
 *
 * @example
 * ```ts
 * const secrets = new PullSecrets((ref) => store.pullSecret(ref));
 * const text = await secrets.get({ name: "regcred" });
 * ```
 * @module
 */

/** A pull secret the controller cannot use: missing, unreadable, or without `.dockerconfigjson`. */
export class PullSecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PullSecretError";
  }
}

/** A reference to a Secret; the namespace defaults to bpfd's own. */
export interface SecretRef {
  name: string;
  namespace?: string;
}

/** Reads a Secret's `.dockerconfigjson` (decoded), or throws PullSecretError. */
export type ReadPullSecret = (ref: SecretRef) => Promise<string>;

/** Decodes a Secret's data into its `.dockerconfigjson` text; `where` names it in errors. */
export function dockerConfigOf(
  secret: { type?: string; data?: Record<string, string> } | undefined,
  where: string,
): string {
  const data = secret?.data?.[".dockerconfigjson"];
  if (!data) {
    throw new PullSecretError(
      `pull secret ${where} has no .dockerconfigjson (type ${secret?.type ?? "unknown"}; ` +
        `create it with kubectl create secret docker-registry)`,
    );
  }
  try {
    return new TextDecoder().decode(Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
  } catch {
    throw new PullSecretError(`pull secret ${where}: .dockerconfigjson is not base64`);
  }
}

/** A short-lived cache in front of a ReadPullSecret (errors are not cached: a fixed Secret works at once). */
export class PullSecrets {
  #cache = new Map<string, { at: number; text: Promise<string> }>();

  constructor(readonly read: ReadPullSecret, readonly ttlMs = 30_000) {}

  /** The `.dockerconfigjson` of `ref`. */
  get(ref: SecretRef): Promise<string> {
    const key = `${ref.namespace ?? ""}/${ref.name}`;
    const hit = this.#cache.get(key);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.text;
    const text = this.read(ref);
    this.#cache.set(key, { at: Date.now(), text });
    text.catch(() => this.#cache.delete(key));
    return text;
  }
}
