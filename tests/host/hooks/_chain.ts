/**
 * Helpers for chain tests: loading the chain test programs (bytecode/chain_record.h) with a tag each and
 * shared maps, and reading which tags ran and in which order on the last packets.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as bpf from "../../../ffi/libbpf.ts";
import { bytecodePath, type TestRuntime } from "../../_runtime.ts";

/** base64 of a little-endian 32-bit value, for globalData. */
export function u32(value: number): string {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setInt32(0, value, true);
  return btoa(String.fromCharCode(...bytes));
}

/** A loaded chain program. */
export interface ChainProgram {
  id: number;
  tag: number;
  maps: Record<string, string>;
}

/**
 * Loads chain_xdp or chain_tc once per tag (the first one owns the maps, the others share them), each
 * returning `verdict` when given.
 */
export async function loadChain(
  rt: Pick<TestRuntime, "invoke">,
  kind: "xdp" | "tc" | "tcx",
  tags: Array<{ tag: number; verdict?: number }>,
): Promise<ChainProgram[]> {
  const loaded: ChainProgram[] = [];
  const name = kind === "xdp" ? "chain_xdp" : "chain_tc";
  for (const { tag, verdict } of tags) {
    const { programs: [p] } = await rt.invoke("load", {
      bytecode: { path: bytecodePath(name) },
      programs: [{ name, type: kind }],
      globalData: { tag: u32(tag), ...(verdict !== undefined ? { verdict: u32(verdict) } : {}) },
      ...(loaded.length ? { mapOwnerId: loaded[0].id } : {}),
    });
    loaded.push({ id: p.id, tag, maps: p.program.maps });
  }
  return loaded;
}

function readU64s(pin: string, keys: number[]): number[] {
  return bpf.withFd(bpf.objGet(pin), (fd) =>
    keys.map((k) => {
      const key = new Uint8Array(4);
      new DataView(key.buffer).setUint32(0, k, true);
      const value = bpf.mapLookup(fd, key, 8);
      return value ? Number(new DataView(value.buffer).getBigUint64(0, true)) : 0;
    }));
}

/** Packets each tag saw. */
export function chainCounts(programs: ChainProgram[]): Map<number, number> {
  const counts = readU64s(programs[0].maps.chain_counts, programs.map((p) => p.tag));
  return new Map(programs.map((p, i) => [p.tag, counts[i]]));
}

/** The tags in the order they ran on the last packet that reached them (last tick, ascending). */
export function chainOrder(programs: ChainProgram[]): number[] {
  const seen = readU64s(programs[0].maps.chain_seen, programs.map((p) => p.tag));
  return programs.map((p, i) => ({ tag: p.tag, seen: seen[i] }))
    .filter((p) => p.seen > 0)
    .sort((a, b) => a.seen - b.seen)
    .map((p) => p.tag);
}

/**
 * Which tags ran on the packets since `before`: every tag of `ran` on the same packets (at least
 * `packets`: the pings, plus whatever ARP or IPv6 the kernel sent meanwhile), every other tag on none.
 */
export function assertRan(
  after: Map<number, number>,
  before: Map<number, number>,
  ran: number[],
  packets: number,
) {
  const delta = Object.fromEntries([...after].map(([tag, n]) => [tag, n - (before.get(tag) ?? 0)]));
  const seen = delta[ran[0]];
  assert.ok(
    seen >= packets,
    `tag ${ran[0]} saw ${seen} packets, fewer than ${packets}: ${JSON.stringify(delta)}`,
  );
  const expected = Object.fromEntries([...after.keys()].map((tag) => [tag, ran.includes(tag) ? seen : 0]));
  assert.deepEqual(delta, expected);
}
