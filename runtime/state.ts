/**
 * What bpfd knows beyond the kernel — program records (who asked, metadata, bytecode source) and link
 * records — kept in memory and persisted to one JSON file with atomic writes (write, fsync, rename), so a
 * runtime killed at any point restarts from either the old or the new state, never a torn one.
 *
 * @module
 */
import { PositiveInt, z } from "../model/zod.ts";
import { LinkRecord, ProgramRecord } from "../model/schemas.ts";
import { tryLockFile } from "../ffi/libc.ts";
import { onMemoryFilesystem } from "../ffi/files.ts";

const StateFile = z.object({
  version: z.literal(1),
  nextLinkId: PositiveInt,
  programs: z.array(ProgramRecord),
  links: z.array(LinkRecord),
});
type StateFile = z.infer<typeof StateFile>;

/**
 * Takes the state directory's lock, `dir/lock`: a root-owned 0600 file (made so if an older runtime left
 * it readable), so only root can open it, and no group member can hold it to keep the runtime from
 * starting. The fd holding the lock, or null when another process holds it.
 */
export function lockStateDir(dir: string): number | null {
  const path = `${dir}/lock`;
  Deno.writeTextFileSync(path, "", { append: true, mode: 0o600 });
  Deno.chmodSync(path, 0o600);
  if (Deno.uid() === 0) Deno.chownSync(path, 0, 0);
  return tryLockFile(path);
}

/** bpfd's records, persisted under `dir/state.json`. */
export class StateStore {
  readonly path: string;
  #programs = new Map<number, ProgramRecord>();
  #links = new Map<number, LinkRecord>();
  /** The links of each program, by link id. */
  #linksOf = new Map<number, Map<number, LinkRecord>>();
  #nextLinkId = 1;
  #writing: Promise<void> = Promise.resolve();
  readonly #buffer = new Uint8Array(64 << 10);
  /** Whether a save must wait for the disk (false on a memory filesystem such as /run/bpfd). */
  readonly #flush: boolean;

  private constructor(readonly dir: string) {
    this.path = `${dir}/state.json`;
    this.#flush = !onMemoryFilesystem(dir);
  }

  /** Opens the store in `dir`, reading the state file if there is one. */
  static async open(dir: string): Promise<StateStore> {
    await Deno.mkdir(dir, { recursive: true });
    const store = new StateStore(dir);
    let text: string | undefined;
    try {
      text = await Deno.readTextFile(store.path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (text !== undefined) {
      const parsed = StateFile.parse(JSON.parse(text));
      for (const p of parsed.programs) store.#programs.set(p.id, p);
      for (const l of parsed.links) store.#putLink(l);
      store.#nextLinkId = parsed.nextLinkId;
    }
    return store;
  }

  programs(): ProgramRecord[] {
    return [...this.#programs.values()].sort((a, b) => a.id - b.id);
  }

  program(id: number): ProgramRecord | undefined {
    return this.#programs.get(id);
  }

  links(programId?: number): LinkRecord[] {
    const links = programId === undefined ? this.#links : this.#linksOf.get(programId);
    return links ? [...links.values()].sort((a, b) => a.id - b.id) : [];
  }

  link(id: number): LinkRecord | undefined {
    return this.#links.get(id);
  }

  /** Reserves a link id; it is persisted with the next save. */
  allocateLinkId(): number {
    return this.#nextLinkId++;
  }

  /** Applies changes in memory and persists them before resolving. */
  async update(change: {
    putPrograms?: ProgramRecord[];
    deletePrograms?: number[];
    putLinks?: LinkRecord[];
    deleteLinks?: number[];
  }): Promise<void> {
    for (const p of change.putPrograms ?? []) this.#programs.set(p.id, p);
    for (const id of change.deletePrograms ?? []) this.#programs.delete(id);
    for (const l of change.putLinks ?? []) this.#putLink(l);
    for (const id of change.deleteLinks ?? []) this.#deleteLink(id);
    await this.save();
  }

  #putLink(link: LinkRecord): void {
    this.#deleteLink(link.id);
    this.#links.set(link.id, link);
    const links = this.#linksOf.get(link.programId);
    if (links) links.set(link.id, link);
    else this.#linksOf.set(link.programId, new Map([[link.id, link]]));
  }

  #deleteLink(id: number): void {
    const link = this.#links.get(id);
    if (!link) return;
    this.#links.delete(id);
    const links = this.#linksOf.get(link.programId);
    links?.delete(id);
    if (links?.size === 0) this.#linksOf.delete(link.programId);
  }

  /**
   * Writes the state file atomically, one record per line through one reused buffer (a state of 1,000
   * programs is ~1 MB: a string and a buffer that size on every change stayed resident until V8 collected
   * them); concurrent saves are serialized and each writes the latest state.
   */
  save(): Promise<void> {
    const programs = this.programs(), links = this.links(), nextLinkId = this.#nextLinkId;
    this.#writing = this.#writing.catch(() => {}).then(() =>
      writeAtomic(
        this.path,
        this.#buffer,
        stateLines({ version: 1, nextLinkId, programs, links }),
        this.#flush,
      )
    );
    return this.#writing;
  }
}

/** The state file's text, in pieces: the header, then one record per line. */
function* stateLines(state: StateFile): Iterable<string> {
  yield `{"version":${state.version},"nextLinkId":${state.nextLinkId},"programs":[`;
  for (const [i, p] of state.programs.entries()) yield `${i ? "," : ""}\n${JSON.stringify(p)}`;
  yield `\n],"links":[`;
  for (const [i, l] of state.links.entries()) yield `${i ? "," : ""}\n${JSON.stringify(l)}`;
  yield "\n]}\n";
}

/**
 * Writes `pieces` to `path` through `buffer`: a temporary file, fsync, rename. The writes and the rename
 * are page-cache work and run synchronously (each async file op is a trip through a worker thread, a
 * noticeable part of a call); only the fsync, which waits for a disk, runs off the event loop, and on a
 * memory filesystem (`flush` false: /run/bpfd is a tmpfs) there is nothing to wait for.
 */
async function writeAtomic(
  path: string,
  buffer: Uint8Array,
  pieces: Iterable<string>,
  flush: boolean,
): Promise<void> {
  const tmp = `${path}.tmp`;
  const encoder = new TextEncoder();
  {
    using file = Deno.openSync(tmp, { write: true, create: true, truncate: true, mode: 0o640 });
    const writeAll = (bytes: Uint8Array) => {
      for (let written = 0; written < bytes.length;) written += file.writeSync(bytes.subarray(written));
    };
    let used = 0;
    for (const piece of pieces) {
      let { read, written } = encoder.encodeInto(piece, buffer.subarray(used));
      if (read < piece.length) {
        writeAll(buffer.subarray(0, used));
        ({ read, written } = encoder.encodeInto(piece, buffer));
        if (read < piece.length) { // a record larger than the buffer
          writeAll(encoder.encode(piece));
          written = 0;
        }
        used = 0;
      }
      used += written;
    }
    writeAll(buffer.subarray(0, used));
    if (flush) await file.syncData();
  }
  Deno.renameSync(tmp, path);
}
