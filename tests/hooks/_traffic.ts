/**
 * Continuous traffic for chain tests: a ping from the peer namespace at a fixed interval for a fixed
 * count, started in the background; its result says how many packets went out and came back.
 *
 * @module
 */
import type { VethPair } from "../_netns.ts";

/** A running ping; `result` resolves when it has sent all its packets. */
export interface Traffic {
  result: Promise<{ transmitted: number; received: number }>;
}

/** Starts `count` pings, one every `intervalSeconds` (root may go below 0.2 s), from peer to host. */
export function startPing(net: VethPair, count: number, intervalSeconds: number): Traffic {
  const child = new Deno.Command("nsenter", {
    args: [
      `--net=/run/netns/${net.peerNs}`,
      "ping",
      "-q",
      "-c",
      String(count),
      "-i",
      String(intervalSeconds),
      "-W",
      "2",
      net.hostAddr,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const result = child.output().then(({ stdout }) => {
    const text = new TextDecoder().decode(stdout);
    const m = text.match(/(\d+) packets transmitted, (\d+) received/);
    if (!m) throw new Error(`ping printed no statistics: ${text}`);
    return { transmitted: Number(m[1]), received: Number(m[2]) };
  });
  return { result };
}
