/**
 * The matchers a BpfPolicy rule is made of, compiled once: name patterns (exact, `*` wildcards, or a
 * `/regex/` that must match the whole name), path-boundary prefixes for files and directories,
 * host/path-boundary prefixes for image registries, and cosign signer identities.
 *
 * @example
 * ```ts
 * compilePattern("/^veth/")("veth12"); // true
 * underDirectory("/opt/bpf/../etc/x.o", "/opt/bpf"); // false
 * ```
 * @module
 */
import { createHash } from "node:crypto";
import type { PolicySigner } from "../model/policy.ts";

/** A compiled name pattern. */
export type Matcher = (name: string) => boolean;

/** A pattern that is not a valid regular expression (the webhook refuses it; here it matches `broken`). */
export class BadPattern extends Error {}

/** Compiles `/regex/` (whole-name match), `a*b` (wildcards) or an exact name. */
export function compilePattern(p: string): Matcher {
  if (p.length > 2 && p.startsWith("/") && p.endsWith("/")) {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${p.slice(1, -1)})$`);
    } catch (err) {
      throw new BadPattern(`${p} is not a valid regular expression: ${(err as Error).message}`);
    }
    return (name) => re.test(name);
  }
  if (p.includes("*")) {
    const re = new RegExp(`^${p.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
    return (name) => re.test(name);
  }
  return (name) => name === p;
}

/** One matcher for a list of patterns; a broken pattern matches `broken` (false for allows, true for denies). */
export function anyPattern(patterns: string[], broken: boolean, compile = compilePattern): Matcher {
  const ms = patterns.map((p) => {
    try {
      return compile(p);
    } catch (err) {
      if (err instanceof BadPattern) return () => broken;
      throw err;
    }
  });
  return (name) => ms.some((m) => m(name));
}

/** A tracepoint pattern: a group (`syscalls`), group/name (wildcards allowed) or a /regex/ on group/name. */
export function compileTracepoint(p: string): Matcher {
  if (!p.startsWith("/") && !p.includes("/")) return (tp) => tp.startsWith(`${p}/`);
  return compilePattern(p);
}

/** `path` with `.`, `..` and repeated slashes resolved (lexically; the node resolves symlinks first). */
export function normalizePath(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return `/${out.join("/")}`;
}

/** Whether `path` is `dir` or inside it, at a path boundary (`/opt/bpf` does not contain `/opt/bpfx`). */
export function underDirectory(path: string, dir: string): boolean {
  const p = normalizePath(path), d = normalizePath(dir);
  return d === "/" || p === d || p.startsWith(`${d}/`);
}

/** An image reference's repository, with the registry made explicit: `docker.io/library/x`, `quay.io/o/x`. */
export function imageRepository(ref: string): string {
  const name = ref.replace(/@.*$/, "").replace(/:[^/:]*$/, "");
  const slash = name.indexOf("/");
  const first = slash < 0 ? "" : name.slice(0, slash);
  if (slash >= 0 && (first.includes(".") || first.includes(":") || first === "localhost")) {
    return `${first.toLowerCase()}${name.slice(slash)}`;
  }
  return `docker.io/${slash < 0 ? "library/" : ""}${name}`;
}

/** Whether an image comes from `registry` (host[:port][/path]) at a host and path boundary. */
export function fromRegistry(ref: string, registry: string): boolean {
  const repo = imageRepository(ref);
  const prefix = registry.replace(/\/+$/, "");
  const host = prefix.split("/")[0].toLowerCase();
  const p = `${host}${prefix.slice(prefix.split("/")[0].length)}`;
  return repo === p || repo.startsWith(`${p}/`);
}

/** The fingerprint cosign verification reports for a PEM public key (`sha256:<hex of the DER>`). */
export function keyFingerprint(pem: string): string {
  const der = Uint8Array.from(
    atob(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "")),
    (c) => c.charCodeAt(0),
  );
  return `sha256:${createHash("sha256").update(der).digest("hex")}`;
}

/**
 * A matcher for the signer a verified pull reports (`key sha256:...`, or `<identity> (issuer <url>)` for
 * keyless signatures).
 */
export function compileSigner(s: PolicySigner): Matcher {
  if (s.key !== undefined) {
    let want: string;
    try {
      want = `key ${keyFingerprint(s.key)}`;
    } catch {
      throw new BadPattern("key is not a PEM public key");
    }
    return (by) => by === want;
  }
  const identity = compilePattern(s.identity!);
  return (by) => {
    const m = by.match(/^(.*) \(issuer (.*)\)$/);
    return !!m && identity(m[1]) && m[2] === s.issuer;
  };
}
