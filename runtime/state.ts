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
  #nextLinkId = 1;
  #writing: Promise<void> = Promise.resolve();

  private constructor(readonly dir: string) {
    this.path = `${dir}/state.json`;
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
      for (const l of parsed.links) store.#links.set(l.id, l);
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
    const all = [...this.#links.values()].sort((a, b) => a.id - b.id);
    return programId === undefined ? all : all.filter((l) => l.programId === programId);
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
    for (const l of change.putLinks ?? []) this.#links.set(l.id, l);
    for (const id of change.deleteLinks ?? []) this.#links.delete(id);
    await this.save();
  }

  /** Writes the state file atomically; concurrent saves are serialized and each writes the latest state. */
  save(): Promise<void> {
    const snapshot: StateFile = {
      version: 1,
      nextLinkId: this.#nextLinkId,
      programs: this.programs(),
      links: this.links(),
    };
    this.#writing = this.#writing.catch(() => {}).then(() =>
      writeAtomic(this.path, JSON.stringify(snapshot, null, 1))
    );
    return this.#writing;
  }
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o640 });
  try {
    const bytes = new TextEncoder().encode(text);
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.syncData();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
}
