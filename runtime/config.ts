/**
 * The node runtime's configuration, with the embedded default: state under /run/bpfd, bpffs at
 * /run/bpfd/fs, the API on /run/bpfd/bpfd.sock and 127.0.0.1:50052.
 *
 * @module
 */
import { z } from "zod";
import { ImageStoreConfig } from "./image/schema.ts";

export const RuntimeConfig = z.object({
  /** Where the state file and the lock live. */
  stateDir: z.string().default("/run/bpfd"),
  /** The bpffs bpfd pins under (mounted there if it is not). */
  bpffs: z.string().default("/run/bpfd/fs"),
  /** The unix socket for local callers (root and the `group`); empty for none. */
  socket: z.string().default("/run/bpfd/bpfd.sock"),
  /** host:port for the TCP listener; empty for none. */
  listen: z.string().default("127.0.0.1:50052"),
  /** The group that may read map pins and use the socket. */
  group: z.string().default("bpfd"),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
  /** The bytecode image store (cache, registries, signature policy). */
  images: ImageStoreConfig.optional(),
}).strict();
export type RuntimeConfig = z.output<typeof RuntimeConfig>;

/** The configuration from an optional JSON file, overridden by the given values. */
export async function loadConfig(
  file: string | undefined,
  overrides: Partial<RuntimeConfig>,
): Promise<RuntimeConfig> {
  const fromFile = file ? JSON.parse(await Deno.readTextFile(file)) : {};
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return RuntimeConfig.parse({ ...fromFile, ...defined });
}
