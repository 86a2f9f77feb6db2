/**
 * Global data as requests and records carry it (base64 per variable) and as the kernel takes it (bytes).
 *
 * @example
 * ```ts
 * globalDataBytes({ verdict: "AQAAAA==" }); // { verdict: Uint8Array [1, 0, 0, 0] }
 * ```
 * @module
 */

/** The bytes of each base64 value (validated by the schema). */
export function globalDataBytes(globalData: Record<string, string>): Record<string, Uint8Array> {
  return Object.fromEntries(
    Object.entries(globalData).map((
      [name, value],
    ) => [name, Uint8Array.from(atob(value), (c) => c.charCodeAt(0))]),
  );
}
