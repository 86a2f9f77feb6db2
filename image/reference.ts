/**
 * Image references as the distribution project defines them:
 *   [domain[:port]/]path[:tag][@algorithm:hex]
 * A name without a domain is on Docker Hub (docker.io, library/ for one-component names).
 *
 * @example
 * ```ts
 * parseReference("xdp_pass"); // { registry: "docker.io", repository: "library/xdp_pass", tag: "latest" }
 * ```
 * @module
 */
import { ImageError } from "./errors.ts";

export interface Reference {
  /** Registry host[:port] as written (docker.io for Docker Hub). */
  registry: string;
  /** Repository path, e.g. "bpfd-bytecode/xdp_pass". */
  repository: string;
  tag?: string;
  digest?: string;
}

const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const PATH_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** Whether `s` is a registry host[:port] as references write it. */
export function isRegistryHost(s: string): boolean {
  return DOMAIN_RE.test(s);
}

/** Whether `s` is a repository path (lower-case components separated by "/"). */
export function isRepositoryPath(s: string): boolean {
  return PATH_RE.test(s);
}

/** Whether `s` is a tag. */
export function isTag(s: string): boolean {
  return TAG_RE.test(s);
}

/** Whether `s` is a sha256 digest. */
export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

function bad(url: string, why: string): ImageError {
  return new ImageError("bad_reference", `image url ${JSON.stringify(url)}: ${why}`, { field: "url" });
}

export function parseReference(url: string): Reference {
  if (/^[a-z]+:\/\//i.test(url)) {
    throw bad(url, "a reference has no scheme (write registry/repository:tag, not a URL)");
  }
  if (url.length > 4096) throw bad(url.slice(0, 64) + "...", "longer than 4096 characters");
  if (/\s/.test(url)) throw bad(url, "contains white space");
  let rest = url;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) {
      throw bad(url, `digest ${JSON.stringify(digest)} is not sha256: followed by 64 lower-case hex digits`);
    }
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) {
      throw bad(url, `tag ${JSON.stringify(tag)} is not valid ([A-Za-z0-9_][A-Za-z0-9_.-]*)`);
    }
  }
  if (rest === "") throw bad(url, "repository name is empty");
  let registry = "docker.io";
  let repository = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes(".") || first.includes(":") || first === "localhost" || first.startsWith("[")) {
      registry = first;
      repository = rest.slice(slash + 1);
      if (!DOMAIN_RE.test(registry)) {
        throw bad(url, `registry ${JSON.stringify(registry)} is not a host[:port]`);
      }
    }
  }
  if (registry === "docker.io" && !repository.includes("/")) repository = `library/${repository}`;
  if (!PATH_RE.test(repository)) {
    throw bad(
      url,
      `repository ${
        JSON.stringify(repository)
      } is not valid (lower-case letters, digits and . _ - separators)`,
    );
  }
  if (registry.length + repository.length + 1 > 255) throw bad(url, "name longer than 255 characters");
  if (!tag && !digest) tag = "latest";
  return { registry, repository, tag, digest };
}

/** The canonical form: registry/repository[:tag][@digest]. */
export function formatReference(r: Reference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ""}${r.digest ? `@${r.digest}` : ""}`;
}

/** The host to talk to for a registry name (Docker Hub's API is not at docker.io). */
export function registryHost(registry: string): string {
  return registry === "docker.io" ? "registry-1.docker.io" : registry;
}
