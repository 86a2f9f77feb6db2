/**
 * Reading and writing pinned maps without privileges, and consuming a ring buffer map. Two ways to have the
 * pins: a map volume (CSI driver `csi.bpfd.io`, docs/csi.md) — pins of the maps a pod was granted, owned by
 * its fsGroup, writable only with the writer grant; or bpfd's own bpffs, `0640 root:bpfd`, read-only for
 * group `bpfd`. No CAP_BPF, no CAP_NET_ADMIN. Needs Deno's `--allow-ffi` (libbpf).
 *
 * @example
 * ```ts
 * const packets = readMapU64("/maps/gate_packets");
 * updateMapU32("/maps/gate_drop", 0, 1);
 * ```
 * @module
 */
import * as bpf from "../ffi/libbpf.ts";
import { RingBufferReader } from "../ffi/ring_buffer.ts";

const index = (i: number) => {
  const key = new Uint8Array(4);
  new DataView(key.buffer).setUint32(0, i, true);
  return key;
};

/** The value at `key` of the map pinned at `path` (undefined when the key has no value). */
export function readMapValue(path: string, key: Uint8Array, valueSize: number): Uint8Array | undefined {
  return bpf.withFd(bpf.objGetReadOnly(path), (fd) => bpf.mapLookup(fd, key, valueSize));
}

/** A u64 at a u32 index of a pinned array map (a counter): 0 when absent. */
export function readMapU64(path: string, i = 0): bigint {
  const v = readMapValue(path, index(i), 8);
  return v ? new DataView(v.buffer).getBigUint64(0, true) : 0n;
}

/** Writes `key` → `value` in the map pinned at `path` (the pin must be writable: the writer grant). */
export function updateMapValue(path: string, key: Uint8Array, value: Uint8Array): void {
  bpf.withFd(bpf.objGet(path), (fd) => bpf.mapUpdate(fd, key, value));
}

/** Writes a u32 at a u32 index of a pinned array map (a switch, a limit). */
export function updateMapU32(path: string, i: number, value: number): void {
  const v = new Uint8Array(4);
  new DataView(v.buffer).setUint32(0, value, true);
  updateMapValue(path, index(i), v);
}

/** A consumer of the ring buffer map pinned at `path` (writable pin: consuming moves its read position). */
export interface RingBufferConsumer {
  /** Hands every ready record to the callback; the number consumed. Never blocks. */
  consume(): number;
  close(): void;
}

/** Opens the ring buffer map pinned at `path`; `onRecord` gets each record's bytes, in order. */
export function openRingBuffer(path: string, onRecord: (record: Uint8Array) => void): RingBufferConsumer {
  const fd = bpf.objGet(path);
  try {
    const reader = new RingBufferReader(fd, onRecord);
    return {
      consume: () => reader.consume(),
      close() {
        reader.close();
        bpf.closeFd(fd);
      },
    };
  } catch (err) {
    bpf.closeFd(fd);
    throw err;
  }
}

/**
 * Consumes the ring buffer pinned at `path` every `intervalMs` until `signal` aborts or `until` returns
 * true after a record; the number of records consumed.
 */
export async function consumeRingBuffer(
  path: string,
  onRecord: (record: Uint8Array) => void,
  opts: { signal?: AbortSignal; intervalMs?: number; until?: () => boolean } = {},
): Promise<number> {
  let total = 0;
  const rb = openRingBuffer(path, onRecord);
  try {
    while (!opts.signal?.aborted) {
      total += rb.consume();
      if (opts.until?.()) break;
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
    }
    return total;
  } finally {
    rb.close();
  }
}
