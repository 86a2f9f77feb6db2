/**
 * uprobes and uretprobes on a function of a binary or library (a path, or a library name found in the
 * usual directories), for every process or one, through the uprobe PMU.
 *
 * @example
 * ```ts
 * const linkFd = await uprobe.attach(progFd, { type: "uprobe", target: "libc.so.6", fnName: "getpid", offset: 0 });
 * ```
 * @module
 */
import { ElfError, functionOffset } from "../../ffi/elf.ts";
import type { AttachSpec } from "../../model/schemas.ts";
import { KernelError, notFound } from "../errors.ts";
import { MAX_TARGET_BYTES, openUserFile, UserFileError } from "../files.ts";
import { pinnedLink, type PlainKind } from "./kind.ts";
import { perfLink, probePmu } from "./perf.ts";

type UprobeAttach = Extract<AttachSpec, { type: "uprobe" | "uretprobe" }>;

/** Library directories searched for a uprobe target given by name (`libc.so.6`). */
const LIBRARY_DIRS = [
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib64",
  "/usr/lib64",
  "/lib",
  "/usr/lib",
];

/** The real path of the target: as given when absolute, else the first library of that name. */
async function resolveTarget(target: string): Promise<string> {
  const candidates = target.startsWith("/")
    ? [target]
    : target.includes("/")
    ? []
    : LIBRARY_DIRS.map((d) => `${d}/${target}`);
  for (const path of candidates) {
    try {
      const real = await Deno.realPath(path);
      if ((await Deno.stat(real)).isFile) return real;
    } catch { /* try the next */ }
  }
  throw notFound("target", target);
}

/** uprobes and uretprobes, as an attach kind. */
export const uprobe: PlainKind<UprobeAttach> = {
  ...pinnedLink,
  async attach(progFd, spec) {
    const pmu = await probePmu("uprobe", spec.type === "uretprobe");
    const path = await resolveTarget(spec.target);
    let offset = spec.offset;
    if (spec.fnName) {
      try {
        // Opened with O_NONBLOCK and checked on the fd (regular, size limit), then read in bounded chunks.
        using file = openUserFile(path, { maxBytes: MAX_TARGET_BYTES });
        offset += await functionOffset(file.path, spec.fnName, { shownAs: path });
      } catch (err) {
        if (err instanceof UserFileError) throw new KernelError("invalid", "target", err.message);
        if (err instanceof ElfError) {
          throw err.kind === "no_symbol"
            ? notFound("function", spec.fnName, { target: path })
            : new KernelError("invalid", "target", err.message);
        }
        throw err;
      }
    }
    const event = { type: pmu.type, config: pmu.config, probe: path, offset: BigInt(offset) };
    return perfLink(progFd, event, {
      what: `attach ${spec.type} to ${path}:${spec.fnName ?? offset}`,
      ...(spec.pid ? { pid: spec.pid, cpu: -1 } : {}),
    });
  },
};
