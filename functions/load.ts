/**
 * `load`: loads programs out of an object file (or a bytecode image) into the kernel, pins them and their
 * maps under bpfd's bpffs (`maps/<program id>/<map name>`), and records who asked and why. Metadata keys
 * under `bpfd.io/` are bpfd's own (set by `reconcile`): a caller's are refused.
 *
 * @example
 * ```sh
 * deno task invoke load '{"bytecode":{"path":"/abs/xdp_counter.bpf.o"},"programs":[{"name":"xdp_counter","type":"xdp"}]}'
 * ```
 * @module
 */
import { z } from "../model/zod.ts";
import { defineFunction } from "./_define.ts";
import { invalid, notFound } from "./_errors.ts";
import {
  BytecodeSource,
  Metadata,
  ProgramId,
  type ProgramRecord,
  ProgramSpec,
  ProgramType,
  ProgramView,
} from "../model/schemas.ts";
import { managedView, programKey } from "./_views.ts";
import { enforceLoad } from "./_policy.ts";
import { globalDataBytes } from "./_global_data.ts";
import { pullImage } from "./_images.ts";
import { RESERVED_METADATA_PREFIX } from "../model/names.ts";
import { MAX_OBJECT_BYTES, sha256Of, type UserFile } from "../kernel/files.ts";
import { openForCaller } from "./_files.ts";

const base64 = z.string().check(
  z.regex(/^[A-Za-z0-9+/]*={0,2}$/, "must be base64"),
  z.refine((s) => s.length % 4 === 0, "must be base64 (length a multiple of 4)"),
);

export const LoadInput = z.strictObject({
  bytecode: BytecodeSource,
  /** The programs to load; optional for an image, whose labels say which programs it holds. */
  programs: z.optional(z.array(ProgramSpec).check(z.minLength(1), z.maxLength(64))),
  /** Values for global variables (`.rodata`, `.data`, `.bss`), base64, exactly the variable's size. */
  globalData: z._default(
    z.record(z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be a C identifier")), base64),
    {},
  ),
  metadata: z._default(Metadata, {}),
  /** Share the maps of this already-loaded program instead of creating new ones. */
  mapOwnerId: z.optional(ProgramId),
});

export const load = defineFunction({
  name: "load",
  summary: "Load programs from an object file or image; pins programs and maps.",
  input: LoadInput,
  output: z.object({ programs: z.array(ProgramView) }),
  fields: {
    object: "bytecode.path",
    program: (i) => `programs.${i}.name`,
    program_type: (i) => `programs.${i}.type`,
    global: (name) => `globalData.${name}`,
  },
  async handler(input, ctx) {
    const reserved = Object.keys(input.metadata).find((k) => k.startsWith(RESERVED_METADATA_PREFIX));
    if (reserved && !ctx.reconciling) {
      throw invalid("metadata", `${reserved}: keys starting with ${RESERVED_METADATA_PREFIX} are bpfd's own`);
    }
    await enforceLoad(ctx, input.bytecode, { programs: input.programs });
    const { objectPath, source, programs, signer, file } = await resolveBytecode(
      input.bytecode,
      ctx,
      input.programs,
    );
    using _checked = file; // libbpf reads the checked file through /proc/self/fd/N; closed on return
    await enforceLoad(ctx, input.bytecode, { programs, signer });
    const globalData = globalDataBytes(input.globalData);
    const keys = input.mapOwnerId ? [programKey(input.mapOwnerId)] : [];
    return await ctx.locks.with(keys, async () => {
      const owner = input.mapOwnerId ? ctx.state.program(input.mapOwnerId) : undefined;
      if (input.mapOwnerId && !owner) throw notFound("program", input.mapOwnerId, { field: "mapOwnerId" });
      const loaded = await ctx.kernel.load({
        objectPath,
        shownPath: "path" in source ? source.path : undefined,
        programs,
        globalData,
        sharedMaps: owner?.maps,
        sharedMapDir: owner?.mapPinPath,
      });
      const now = new Date().toISOString();
      const records: ProgramRecord[] = loaded.map((p, i) => ({
        id: p.id,
        name: p.name,
        type: programs[i].type,
        tag: p.tag,
        bytecode: source,
        pinPath: p.pinPath,
        mapPinPath: p.mapPinPath,
        maps: p.maps,
        mapOwnerId: owner?.id ?? (i > 0 ? loaded[0].id : undefined),
        globalData: input.globalData,
        metadata: input.metadata,
        fnName: programs[i].fnName,
        loadedAt: now,
        loadedBy: ctx.caller,
        ...(ctx.reconciling ? { reconciledFor: ctx.reconciling } : {}),
      }));
      try {
        await ctx.state.update({ putPrograms: records });
      } catch (err) {
        const shared = new Set(Object.values(owner?.maps ?? {}));
        for (const r of records) {
          ctx.kernel.unload(
            r.id,
            Object.values(r.maps).filter((m) => !shared.has(m)),
          );
        }
        throw err;
      }
      ctx.log.info("loaded", {
        programs: records.map((r) => ({ id: r.id, name: r.name, type: r.type })),
        caller: ctx.caller,
      });
      return { programs: records.map((r) => managedView(ctx, r, { loaded: true })) };
    });
  },
});

async function resolveBytecode(
  bytecode: z.output<typeof BytecodeSource>,
  ctx: Parameters<typeof load.handler>[1],
  programs: ProgramSpec[] | undefined,
): Promise<
  {
    objectPath: string;
    source: ProgramRecord["bytecode"];
    programs: ProgramSpec[];
    signer?: string | null;
    file?: UserFile;
  }
> {
  if ("path" in bytecode) {
    // Opened without blocking and checked on the fd; libbpf reads it through /proc/self/fd/N.
    const file = openForCaller(ctx, {
      path: bytecode.path,
      field: "bytecode.path",
      what: "file",
      maxBytes: MAX_OBJECT_BYTES,
    });
    if (!programs) {
      file.close();
      throw invalid("programs", "required with bytecode.path (only images declare their programs)");
    }
    return {
      objectPath: file.path,
      source: { path: bytecode.path, sha256: await sha256Of(file) },
      programs,
      file,
    };
  }
  const pulled = await pullImage(ctx, bytecode.image, "bytecode.image");
  if (programs) checkAgainstLabels(programs, pulled.programs);
  return {
    objectPath: pulled.objectPath,
    source: { image: { url: pulled.url, digest: pulled.digest } },
    programs: programs ?? programsFromLabels(pulled.programs),
    signer: pulled.signature?.verified ? pulled.signature.by ?? null : null,
  };
}

/** Same program type for an image label (bpfman writes kprobe/uprobe/tc for the return and tcx variants). */
const LABEL_FAMILY: Record<string, string> = { kretprobe: "kprobe", uretprobe: "uprobe", tcx: "tc" };

/** The programs an image's labels declare (function name → type), as load specs. */
function programsFromLabels(labels: Record<string, string>): ProgramSpec[] {
  const specs = Object.entries(labels).map(([name, type]) => ({ name, type: type.toLowerCase() }));
  if (specs.length === 0) {
    throw invalid("programs", "the image declares no programs: name them in the request");
  }
  for (const spec of specs) {
    if (!ProgramType.safeParse(spec.type).success) {
      throw invalid(
        "programs",
        `the image declares ${spec.name} as "${spec.type}", which bpfd does not load; name the programs`,
      );
    }
  }
  return specs as ProgramSpec[];
}

/** Named programs must be ones the image's io.ebpf.programs label declares, with a matching type. */
function checkAgainstLabels(programs: ProgramSpec[], labels: Record<string, string>) {
  programs.forEach((p, i) => {
    const declared = labels[p.name];
    if (declared === undefined) {
      throw invalid(
        `programs.${i}.name`,
        `${p.name} is not among the image's programs (${Object.keys(labels).join(", ") || "none"})`,
      );
    }
    const family = (t: string) => LABEL_FAMILY[t.toLowerCase()] ?? t.toLowerCase();
    if (family(declared) !== family(p.type)) {
      throw invalid(`programs.${i}.type`, `${p.name} is a ${declared} program in the image, not ${p.type}`);
    }
  });
}
