// Map reads through a map volume's pin against the node's own pin of the same map (run inside the node):
// readMapU64 (open the pin read-only, look up, close) in alternating rounds; JSON out.
import { readMapU64 } from "../../client/maps.ts";

const [volume, nodePin] = Deno.args;
const ROUNDS = 10, READS = 2000;
const times = { volume: [] as number[], node: [] as number[] };
for (let r = 0; r < ROUNDS; r++) {
  for (const [key, path] of [["volume", volume], ["node", nodePin]] as const) {
    const t0 = performance.now();
    for (let i = 0; i < READS; i++) readMapU64(path);
    times[key].push(((performance.now() - t0) * 1e6) / READS);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const v = median(times.volume), n = median(times.node);
console.log(JSON.stringify({
  volumeNsPerRead: Math.round(v),
  nodePinNsPerRead: Math.round(n),
  volumeOverNode: Number((v / n).toFixed(2)),
}));
