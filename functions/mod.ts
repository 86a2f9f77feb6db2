/**
 * Every function the node runtime serves, by name. Each module is imported on the function's first call,
 * so a runtime holds only the functions (and schemas: reconcile brings the CRDs) it has been asked for.
 *
 * @example
 * ```ts
 * const list = await FUNCTIONS.get("list")!();
 * console.log(list.summary);
 * ```
 * @module
 */
import type { BpfdFunction } from "./_define.ts";

export { type BpfdFunction, invoke } from "./_define.ts";
export { BpfdError } from "./_errors.ts";
export type { Ctx, ImagePuller, Locks, PolicyGate, Records } from "./_ctx.ts";
export { pruneVanished, type Vanished } from "./_records.ts";

/** Imports one function. */
export type FunctionLoader = () => Promise<BpfdFunction>;

/** The functions by name, in the order `GET /v1/functions` lists them. */
export const FUNCTIONS: ReadonlyMap<string, FunctionLoader> = new Map<string, FunctionLoader>([
  ["load", async () => (await import("./load.ts")).load],
  ["attach", async () => (await import("./attach.ts")).attach],
  ["detach", async () => (await import("./detach.ts")).detach],
  ["modify", async () => (await import("./modify.ts")).modify],
  ["unload", async () => (await import("./unload.ts")).unload],
  ["list", async () => (await import("./list.ts")).list],
  ["get", async () => (await import("./get.ts")).get],
  ["pull", async () => (await import("./pull.ts")).pull],
  ["reconcile", async () => (await import("./reconcile.ts")).reconcile],
]);

/** Every function, imported. */
export function allFunctions(): Promise<BpfdFunction[]> {
  return Promise.all([...FUNCTIONS.values()].map((load) => load()));
}
