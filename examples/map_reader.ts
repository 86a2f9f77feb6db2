/**
 * An example application agent (the seed's deployment model 2): runs on a node without privileges,
 * finds the node's BpfProgram for a BpfProgramConfig through bpfd's helper library, and reads a counter
 * from the program's pinned map — read-only, as a member of group `bpfd`.
 *
 *   deno run -A examples/map_reader.ts --config xdp-counter --map xdp_packets [--node N] [--kubeconfig F]
 *     [--bpffs /run/bpfd/fs=/bpfd] [--count 3] [--interval 1]
 *
 * In a pod: set NODE_NAME from the downward API (spec.nodeName), mount the host's /run/bpfd/fs, run with
 * supplementalGroups [<gid of bpfd>], bind the ServiceAccount to `bpfd-bpfprogram-viewer`. Prints one JSON
 * line per reading: {config, node, map, path, value}.
 *
 * @module
 */
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { findNodeProgram, readMapU64 } from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    config: { type: "string" },
    map: { type: "string" },
    node: { type: "string" },
    kubeconfig: { type: "string" },
    bpffs: { type: "string" },
    count: { type: "string", default: "1" },
    interval: { type: "string", default: "1" },
    timeout: { type: "string", default: "60" },
  },
});
if (!values.config) {
  console.error("--config NAME is required (the BpfProgramConfig whose map to read)");
  Deno.exit(2);
}
const kc = new k8s.KubeConfig();
if (values.kubeconfig) kc.loadFromFile(values.kubeconfig);
else kc.loadFromDefault();
const [nodeFs, localFs] = values.bpffs?.split("=") ?? [];

const found = await findNodeProgram({
  kc,
  config: values.config,
  node: values.node,
  timeoutMs: Number(values.timeout) * 1000,
  bpffs: values.bpffs ? { node: nodeFs, local: localFs } : undefined,
});
const map = values.map ?? Object.keys(found.maps)[0];
const path = found.maps[map];
if (!path) {
  console.error(
    `no map ${map} in ${found.bpfProgram.metadata.name} (maps: ${Object.keys(found.maps).join(", ")})`,
  );
  Deno.exit(1);
}
for (let i = 0; i < Number(values.count); i++) {
  if (i > 0) await new Promise((r) => setTimeout(r, Number(values.interval) * 1000));
  const value = readMapU64(path, 0);
  console.log(
    JSON.stringify({ config: values.config, node: found.node, map, path, value: value.toString() }),
  );
}
