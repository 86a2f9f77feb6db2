/**
 * Where a registry client may go besides the registry: the bearer token `realm` a challenge names and the
 * targets of redirects. The node pulls from its host network, so a registry must not be able to steer it to
 * plain HTTP, to internal addresses or to arbitrary token servers (docs/images-security.md has the rules).
 *
 * @example
 * ```ts
 * const realm = checkRealm('https://auth.example.com/token', { registry: "example.com", insecure: false });
 * ```
 * @module
 */
import { ImageError } from "./errors.ts";
import { registryHost } from "./reference.ts";

/** The registry a client talks to and the extra hosts its configuration trusts. */
export interface EgressRules {
  /** The registry as in the reference (host[:port], docker.io for Docker Hub). */
  registry: string;
  /** Whether the registry is reached over plain HTTP (it is in insecureRegistries). */
  insecure: boolean;
  /** Extra hosts (host or host:port) allowed as bearer realms. */
  realmHosts?: string[];
  /** Hosts blob downloads may be redirected to; empty: any public HTTPS host. */
  redirectHosts?: string[];
}

/** Token servers of registries whose realm is on another host of the same operator. */
const KNOWN_REALMS: Record<string, string[]> = { "docker.io": ["auth.docker.io"] };

/** Most redirects a request follows. */
export const MAX_REDIRECTS = 5;

function refuse(registry: string, why: string): ImageError {
  return new ImageError("registry_error", `registry ${registry}: ${why}`);
}

/** The origin of a URL for messages: scheme and host, never its path or query. */
export function originOf(u: URL): string {
  return `${u.protocol}//${u.host}`;
}

function listed(list: string[] | undefined, u: URL): boolean {
  return (list ?? []).some((h) => {
    const entry = h.toLowerCase();
    return entry === u.host.toLowerCase() || entry === u.hostname.toLowerCase();
  });
}

/**
 * The bearer realm URL if the rules admit it: HTTPS on the registry's host (any port), a known token host
 * of the registry, or a host in `realmHosts`; plain HTTP only on the registry's own host when the registry
 * itself is insecure. Anything else is refused before a byte is sent.
 */
export function checkRealm(realm: string, rules: EgressRules): URL {
  let u: URL;
  try {
    u = new URL(realm);
  } catch {
    throw refuse(rules.registry, "bearer challenge names a realm that is not a URL; not followed");
  }
  if (u.username || u.password) {
    throw refuse(rules.registry, "bearer realm carries credentials; not followed");
  }
  const host = registryHost(rules.registry);
  const own = u.hostname.toLowerCase() === hostnameOf(host);
  const trusted = own || (KNOWN_REALMS[rules.registry] ?? []).includes(u.hostname.toLowerCase()) ||
    listed(rules.realmHosts, u);
  if (!trusted) {
    throw refuse(
      rules.registry,
      `bearer realm ${originOf(u)} is not on the registry's host nor in realmHosts; not followed`,
    );
  }
  if (u.protocol === "https:") return u;
  if (u.protocol === "http:" && rules.insecure && own) return u;
  throw refuse(rules.registry, `bearer realm ${originOf(u)} is not HTTPS; not followed`);
}

/**
 * The target of a redirect from `from` if the rules admit it. Never from HTTPS to HTTP. The same origin is
 * always fine; another host only for blob downloads, over HTTPS, and only to a host in `redirectHosts`
 * (or, when that is empty, to any host that is not a loopback, private or link-local address).
 */
export function checkRedirect(
  from: URL,
  location: string | null,
  opts: { blob: boolean },
  rules: EgressRules,
): URL {
  if (location === null) throw refuse(rules.registry, "redirect without Location; not followed");
  let to: URL;
  try {
    to = new URL(location, from);
  } catch {
    throw refuse(rules.registry, "redirect to something that is not a URL; not followed");
  }
  if (to.protocol !== "https:" && to.protocol !== "http:") {
    throw refuse(rules.registry, `redirect to a ${to.protocol} URL; not followed`);
  }
  if (from.protocol === "https:" && to.protocol === "http:") {
    throw refuse(rules.registry, `redirect from HTTPS to HTTP (${originOf(to)}); not followed`);
  }
  if (to.username || to.password) throw refuse(rules.registry, "redirect carries credentials; not followed");
  if (to.origin === from.origin) return to;
  if (!opts.blob) {
    throw refuse(
      rules.registry,
      `redirect to another host (${originOf(to)}) outside a blob download; not followed`,
    );
  }
  if (to.protocol !== "https:") {
    throw refuse(rules.registry, `redirect to another host over plain HTTP (${originOf(to)}); not followed`);
  }
  const allowed = rules.redirectHosts?.length
    ? listed(rules.redirectHosts, to)
    : !isInternalHost(to.hostname);
  if (!allowed) {
    throw refuse(
      rules.registry,
      `redirect to ${originOf(to)}, which is ${
        rules.redirectHosts?.length ? "not in redirectHosts" : "an internal address"
      }; not followed`,
    );
  }
  return to;
}

/** The host name of host[:port] or [v6]:port, lower case. */
function hostnameOf(hostPort: string): string {
  return new URL(`http://${hostPort}`).hostname.toLowerCase();
}

/** Whether a host name is localhost or an IP literal of a loopback, private, link-local or unused range. */
export function isInternalHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(h);
  if (v4) return internalV4(v4.slice(1).map(Number));
  if (!h.includes(":")) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h) ??
    /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(h);
  if (mapped) {
    const parts = mapped.length === 2 ? mapped[1].split(".").map(Number) : [
      parseInt(mapped[1], 16) >> 8,
      parseInt(mapped[1], 16) & 255,
      parseInt(mapped[2], 16) >> 8,
      parseInt(mapped[2], 16) & 255,
    ];
    return internalV4(parts);
  }
  if (h === "::1" || h === "::") return true;
  const first = parseInt(h.split(":")[0] || "0", 16);
  return (first & 0xfe00) === 0xfc00 || (first & 0xffc0) === 0xfe80;
}

function internalV4([a, b]: number[]): boolean {
  return a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127);
}
