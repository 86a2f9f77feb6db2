/**
 * The image allow-list. An entry is a registry host[:port], optionally followed by a repository prefix that
 * matches whole path components, or by one repository with a tag or digest; or a bare digest. So
 * `registry.corp.com/team` admits `registry.corp.com/team/img`, not `registry.corp.com/teamevil` nor
 * `registry.corp.com.evil.net/team`. An empty list admits everything.
 *
 * @example
 * ```ts
 * const allow = parseAllowList(["quay.io/bpfd-bytecode/", "sha256:..."]);
 * allowedByName(allow, parseReference("quay.io/bpfd-bytecode/xdp_pass:latest")); // true
 * ```
 * @module
 */
import { ImageError } from "./errors.ts";
import { isDigest, isRegistryHost, isRepositoryPath, isTag, type Reference } from "./reference.ts";

/** One parsed entry: a bare digest, or a registry with an optional repository (prefix, or exact + tag/digest). */
export type AllowEntry =
  | { digest: string }
  | { registry: string; repository?: string; tag?: string; digest?: string };

/** The parsed allow-list. */
export interface AllowList {
  entries: AllowEntry[];
}

function bad(entry: string, why: string): ImageError {
  return new ImageError("bad_config", `allow entry ${JSON.stringify(entry)}: ${why}`, { field: "allow" });
}

/** Parses one entry; a malformed one is a configuration error (bad_config). */
export function parseAllowEntry(entry: string): AllowEntry {
  if (isDigest(entry)) return { digest: entry };
  let rest = entry.endsWith("/") ? entry.slice(0, -1) : entry;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw bad(entry, "the digest is not sha256: and 64 lower-case hex digits");
  }
  const slash = rest.indexOf("/");
  const registry = slash < 0 ? rest : rest.slice(0, slash);
  let repository = slash < 0 ? undefined : rest.slice(slash + 1);
  if (!isRegistryHost(registry) || !/[.:]|^localhost$|^\[/.test(registry)) {
    throw bad(entry, "must start with a registry host (write docker.io/... for Docker Hub)");
  }
  let tag: string | undefined;
  const colon = repository?.lastIndexOf(":") ?? -1;
  if (repository !== undefined && colon >= 0) {
    tag = repository.slice(colon + 1);
    repository = repository.slice(0, colon);
    if (!isTag(tag)) throw bad(entry, "the tag is not valid");
  }
  if (repository !== undefined && !isRepositoryPath(repository)) {
    throw bad(entry, "the repository is not valid (lower-case components separated by /)");
  }
  if ((tag || digest) && repository === undefined) throw bad(entry, "a tag or digest needs a repository");
  return { registry: registry.toLowerCase(), repository, tag, digest };
}

/** Parses the configured entries. */
export function parseAllowList(entries: string[]): AllowList {
  return { entries: entries.map(parseAllowEntry) };
}

function admitsName(e: AllowEntry, ref: Reference): boolean {
  if (!("registry" in e) || e.registry !== ref.registry.toLowerCase()) return false;
  if (e.repository === undefined) return true;
  if (e.tag || e.digest) return e.repository === ref.repository && (!e.tag || e.tag === ref.tag);
  return ref.repository === e.repository || ref.repository.startsWith(`${e.repository}/`);
}

/** Whether the name alone admits `ref` (an empty list admits all). Entries with a digest need the digest. */
export function allowedByName(list: AllowList, ref: Reference): boolean {
  return list.entries.length === 0 || list.entries.some((e) => !e.digest && admitsName(e, ref));
}

/** Whether `ref`, now known to be one of `digests` (manifest, index), is admitted. */
export function allowed(list: AllowList, ref: Reference, digests: string[]): boolean {
  if (allowedByName(list, ref)) return true;
  return list.entries.some((e) =>
    e.digest !== undefined && digests.includes(e.digest) && (!("registry" in e) || admitsName(e, ref))
  );
}

/** Whether a digest could still admit an image that its name does not. */
export function hasDigestEntries(list: AllowList): boolean {
  return list.entries.some((e) => e.digest !== undefined);
}
