/**
 * An example application that uses its map volume (CSI driver `csi.bpfd.io`, docs/csi.md): no privileges,
 * no hostPath, only the pins of the maps its pod was granted, under the volume's mount path.
 *
 *   deno run -A examples/map_volume.ts read   --dir /maps --map gate_packets [--count N] [--interval S]
 *   deno run -A examples/map_volume.ts set    --dir /maps --map gate_drop --value 1
 *   deno run -A examples/map_volume.ts events --dir /maps --map gate_events [--count N]
 *
 * `read` prints {map, value} (a u64 at index 0) every interval, N times (0: forever); `set` writes a u32 at
 * index 0 (needs the writer grant); `events` prints each ring buffer record as its u32 words until N came.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { consumeRingBuffer, readMapU64, updateMapU32 } from "../mod.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    dir: { type: "string", default: "/maps" },
    map: { type: "string" },
    value: { type: "string", default: "1" },
    count: { type: "string", default: "1" },
    interval: { type: "string", default: "1" },
  },
});
const [action] = positionals;
if (!values.map || !["read", "set", "events"].includes(action)) {
  console.error("usage: map_volume.ts read|set|events --map NAME [--dir /maps] [--value V] [--count N]");
  Deno.exit(2);
}
const path = `${values.dir}/${values.map}`;
const count = Number(values.count);
const print = (o: Record<string, unknown>) => console.log(JSON.stringify({ map: values.map, ...o }));

if (action === "read") {
  for (let i = 0; count === 0 || i < count; i++) {
    if (i) await new Promise((r) => setTimeout(r, Number(values.interval) * 1000));
    print({ value: String(readMapU64(path)) });
  }
} else if (action === "set") {
  updateMapU32(path, 0, Number(values.value));
  print({ value: Number(values.value) });
} else {
  let seen = 0;
  await consumeRingBuffer(path, (record) => {
    print({ record: ++seen, words: Array.from(new Uint32Array(record.buffer, 0, record.length >> 2)) });
  }, { until: () => count > 0 && seen >= count });
}
