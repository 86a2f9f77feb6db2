/**
 * Reading a pinned map without privileges: bpfd pins maps `0640 root:bpfd` under directories `0750
 * root:bpfd`, so a process in group `bpfd` opens them read-only (BPF_F_RDONLY) — no CAP_BPF, no
 * CAP_NET_ADMIN, no write access. Needs Deno's `--allow-ffi` (libbpf).
 *
 * @module
 */
import * as bpf from "../ffi/libbpf.ts";

/** The value at `key` of the map pinned at `path` (undefined when the key has no value). */
export function readMapValue(path: string, key: Uint8Array, valueSize: number): Uint8Array | undefined {
  return bpf.withFd(bpf.objGetReadOnly(path), (fd) => bpf.mapLookup(fd, key, valueSize));
}

/** A u64 at a u32 index of a pinned array map (a counter): 0 when absent. */
export function readMapU64(path: string, index = 0): bigint {
  const key = new Uint8Array(4);
  new DataView(key.buffer).setUint32(0, index, true);
  const v = readMapValue(path, key, 8);
  return v ? new DataView(v.buffer).getBigUint64(0, true) : 0n;
}
