/**
 * Deploy's registry options, checked before anything is sent: `--insecure-registry HOST[:PORT]` (plain
 * HTTP) and `--registry-ca FILE` (PEM certificates of a private CA), for the node runtimes' configuration.
 *
 * @example
 * ```ts
 * const { insecureRegistries, registryCa } = await registryOptions(["10.0.0.1:5000"], ["ca.pem"]);
 * ```
 * @module
 */
import type { ManifestOptions } from "../manifests/manifests.ts";

/** A registry's host[:port], as image references and the node config spell it. */
const REGISTRY_HOST = /^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?$/;

/** The manifest options of the flags; throws naming the flag and the value it refuses. */
export async function registryOptions(
  insecure: string[] = [],
  caFiles: string[] = [],
): Promise<Pick<ManifestOptions, "insecureRegistries" | "registryCa">> {
  for (const host of insecure) {
    if (!REGISTRY_HOST.test(host)) {
      throw new Error(`--insecure-registry: a registry host[:port] (no scheme, no path), not ${host}`);
    }
  }
  const pems: string[] = [];
  for (const file of caFiles) {
    const text = await Deno.readTextFile(file).catch((e) => {
      throw new Error(`--registry-ca: cannot read ${file}: ${(e as Error).message}`);
    });
    if (!text.includes("-----BEGIN CERTIFICATE-----")) {
      throw new Error(`--registry-ca: ${file} holds no PEM certificate`);
    }
    pems.push(text.trim());
  }
  return {
    ...(insecure.length ? { insecureRegistries: insecure } : {}),
    ...(pems.length ? { registryCa: pems.join("\n") + "\n" } : {}),
  };
}
