/**
 * Every function the node runtime serves, by name.
 *
 * @module
 */
import type { BpfdFunction } from "./_define.ts";
import { attach } from "./attach.ts";
import { detach } from "./detach.ts";
import { get } from "./get.ts";
import { list } from "./list.ts";
import { load } from "./load.ts";
import { modify } from "./modify.ts";
import { pull } from "./pull.ts";
import { reconcile } from "./reconcile.ts";
import { unload } from "./unload.ts";

export { attach, detach, get, list, load, modify, pull, reconcile, unload };

/** The functions by name. */
export const FUNCTIONS: ReadonlyMap<string, BpfdFunction> = new Map(
  ([load, attach, detach, modify, unload, list, get, pull, reconcile] as BpfdFunction[]).map((
    fn,
  ) => [fn.name, fn]),
);
