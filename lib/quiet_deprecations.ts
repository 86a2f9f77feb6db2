/**
 * Turns off Node's deprecation warnings for this process. `@kubernetes/client-node` pulls in Node's
 * `punycode` through its fetch stack, and Deno then prints DEP0040 on every start: a warning about a
 * dependency's internals that users of bpfd can do nothing about. Import it first in an entry point.
 *
 * @example
 * ```ts
 * import "../lib/quiet_deprecations.ts";
 * ```
 * @module
 */
import process from "node:process";

process.noDeprecation = true;
