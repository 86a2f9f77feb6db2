/**
 * The node's network: its and the peer's namespaces, the veth between them, and the `kubernetes` Service
 * as a static DNAT in the node's namespace (there is no kube-proxy).
 * @module
 */
import { must, run } from "../../lib/command.ts";
import { NODE_IP, NODE_NETNS, PEER_IP, PEER_NETNS, SERVICE_IP } from "./layout.ts";
import { exists } from "./processes.ts";

/** The node's and the peer's network namespaces, the veth between them, the kubernetes Service's DNAT. */
export async function makeNetwork(): Promise<void> {
  for (const ns of [NODE_NETNS, PEER_NETNS]) {
    if (!(await exists(`/run/netns/${ns}`))) await must("ip", ["netns", "add", ns]);
  }
  if ((await run("ip", ["-n", NODE_NETNS, "link", "show", "eth0"])).code !== 0) {
    // Both ends are made inside the namespaces: nothing ever appears in the host's.
    await must("ip", [
      "-n",
      NODE_NETNS,
      "link",
      "add",
      "eth0",
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      PEER_NETNS,
    ]);
    await must("ip", ["-n", NODE_NETNS, "addr", "add", `${NODE_IP}/24`, "dev", "eth0"]);
    await must("ip", ["-n", PEER_NETNS, "addr", "add", `${PEER_IP}/24`, "dev", "eth0"]);
    for (const ns of [NODE_NETNS, PEER_NETNS]) {
      await must("ip", ["-n", ns, "link", "set", "lo", "up"]);
      await must("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    }
    await must("ip", ["-n", NODE_NETNS, "route", "add", "default", "via", PEER_IP]);
    await must("nsenter", [`--net=/run/netns/${NODE_NETNS}`, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  }
  const dnat = [
    "-d",
    `${SERVICE_IP}/32`,
    "-p",
    "tcp",
    "--dport",
    "443",
    "-j",
    "DNAT",
    "--to-destination",
    `${NODE_IP}:6443`,
  ];
  const ipt = (args: string[]) =>
    run("nsenter", [`--net=/run/netns/${NODE_NETNS}`, "iptables", "-t", "nat", ...args]);
  for (const chain of ["OUTPUT", "PREROUTING"]) {
    if ((await ipt(["-C", chain, ...dnat])).code !== 0) {
      const r = await ipt(["-A", chain, ...dnat]);
      if (r.code !== 0) throw new Error(`iptables in ${NODE_NETNS}: ${r.stderr.trim()}`);
    }
  }
}
