/**
 * Aligned text tables for the CLI's output.
 *
 * @example
 * ```ts
 * table(["ID", "NAME"], [["1", "xdp_counter"]]);
 * ```
 * @module
 */

/** Formats rows as an aligned table with a header. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  return [header, ...rows].map((r) => r.map((c, i) => (c ?? "").padEnd(widths[i])).join("  ").trimEnd()).join(
    "\n",
  );
}
