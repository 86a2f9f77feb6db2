/**
 * Consuming a BPF ring buffer map through libbpf's `ring_buffer` (the map's pages mmap-ed: the consumer
 * page writable, so the map fd must be open for writing). `consume()` never blocks: it hands every record
 * that is ready to the callback, in order, and returns how many there were.
 *
 * @example
 * ```ts
 * const rb = new RingBufferReader(fd, (record) => console.log(record.length));
 * rb.consume();
 * rb.close();
 * ```
 * @module
 */
import { checkPointer, lib } from "./libbpf.ts";
import { LibbpfError } from "./errno.ts";

/** A ring buffer map's consumer; close it when done (it holds mappings and a callback). */
export class RingBufferReader {
  #rb: Deno.PointerObject | null;
  #callback: Deno.UnsafeCallback<
    { readonly parameters: readonly ["pointer", "pointer", "usize"]; readonly result: "i32" }
  >;

  constructor(mapFd: number, onRecord: (record: Uint8Array) => void) {
    this.#callback = new Deno.UnsafeCallback(
      { parameters: ["pointer", "pointer", "usize"], result: "i32" } as const,
      (_ctx, data, size) => {
        const n = Number(size);
        onRecord(
          data && n
            ? new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(data, n)).slice()
            : new Uint8Array(),
        );
        return 0;
      },
    );
    try {
      this.#rb = checkPointer(
        "ring buffer",
        () => lib.ring_buffer__new(mapFd, this.#callback.pointer, null, null),
      );
    } catch (err) {
      this.#callback.close();
      throw err;
    }
  }

  /** Hands every ready record to the callback; the number consumed. */
  consume(): number {
    if (!this.#rb) throw new Error("ring buffer closed");
    const n = lib.ring_buffer__consume(this.#rb);
    if (n < 0) throw new LibbpfError("ring buffer consume", -n);
    return n;
  }

  /** Unmaps the buffer and frees the callback. */
  close(): void {
    if (!this.#rb) return;
    lib.ring_buffer__free(this.#rb);
    this.#rb = null;
    this.#callback.close();
  }
}
