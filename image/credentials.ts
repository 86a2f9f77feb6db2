/**
 * Registry credentials from a docker config.json or a Kubernetes pull secret (.dockerconfigjson, or the
 * older .dockercfg which is the bare `auths` map).
 *
 * @example
 * ```ts
 * const cred = lookupCredential(parseDockerConfig(text), "quay.io");
 * ```
 * @module
 */
import { ImageError } from "./errors.ts";

export interface Credential {
  username: string;
  password: string;
}

export type CredentialMap = Map<string, Credential>;

function normalizeKey(key: string): string {
  let k = key.trim().replace(/^[a-z]+:\/\//i, "");
  k = k.split("/")[0];
  if (k === "index.docker.io" || k === "registry-1.docker.io" || k === "registry.hub.docker.com") {
    k = "docker.io";
  }
  return k.toLowerCase();
}

/** Parses docker config.json text; `field` names the input in errors. */
export function parseDockerConfig(text: string, field = "auth"): CredentialMap {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch { // the parser's message quotes the text: say no more than this
    throw new ImageError("bad_auth", `${field}: not JSON`, { field });
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new ImageError("bad_auth", `${field}: expected an object with "auths"`, { field });
  }
  const auths = "auths" in doc ? (doc as { auths: unknown }).auths : doc;
  if (typeof auths !== "object" || auths === null || Array.isArray(auths)) {
    throw new ImageError("bad_auth", `${field}: "auths" must be an object`, { field });
  }
  const out: CredentialMap = new Map();
  for (const [i, [key, entry]] of Object.entries(auths as Record<string, unknown>).entries()) {
    // Errors name the entry by position: keys and values may hold secrets and never reach a message.
    const where = `${field}: auths entry ${i + 1}`;
    if (typeof entry !== "object" || entry === null) {
      throw new ImageError("bad_auth", `${where} must be an object`, { field });
    }
    const e = entry as Record<string, unknown>;
    let cred: Credential | undefined;
    if (typeof e.auth === "string" && e.auth !== "") {
      let decoded: string;
      try {
        decoded = atob(e.auth);
      } catch {
        throw new ImageError("bad_auth", `${where}: auth is not base64`, { field });
      }
      const colon = decoded.indexOf(":");
      if (colon < 0) {
        throw new ImageError("bad_auth", `${where}: auth must be base64 of username:password`, { field });
      }
      cred = { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    } else if (typeof e.username === "string") {
      cred = { username: e.username, password: typeof e.password === "string" ? e.password : "" };
    } else if (typeof e.identitytoken === "string") {
      // An OAuth2 refresh token: sent as the password of the token request, user <token>.
      cred = { username: "<token>", password: e.identitytoken };
    }
    if (cred) out.set(normalizeKey(key), cred);
  }
  return out;
}

export function lookupCredential(map: CredentialMap | undefined, registry: string): Credential | undefined {
  return map?.get(normalizeKey(registry));
}
