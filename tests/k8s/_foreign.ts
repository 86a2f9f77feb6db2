/**
 * "Someone else's" program for the inventory tests: `deno run -A _foreign.ts NETNS IFACE` loads
 * tc_counter without bpfd, attaches it as a TCX ingress link on IFACE in the network namespace NETNS (a
 * /run/netns path), prints `ready <program id>` and holds the fds until it is killed.
 *
 * @module
 */
import { BpfAttachType } from "../../ffi/abi.ts";
import * as bpf from "../../ffi/libbpf.ts";
import { tcxLinkCreate } from "../../ffi/bpf.ts";
import { BpfObject } from "../../ffi/object.ts";
import { ifNameToIndex, inNetns } from "../../ffi/libc.ts";

const [netns, iface] = Deno.args;
const obj = BpfObject.open(new URL("../../bytecode/build/tc_counter.bpf.o", import.meta.url).pathname);
const verdict = obj.globals().find((g) => g.name === "verdict")!;
obj.setGlobal(verdict, new Uint8Array([0xff, 0xff, 0xff, 0xff])); // TC_ACT_UNSPEC: the chain goes on
obj.load();
const fd = obj.programFd("tc_counter");
inNetns(
  netns,
  () => tcxLinkCreate("foreign tcx", fd, ifNameToIndex(iface), BpfAttachType.TCX_INGRESS, { flags: 0 }, 0n),
);
console.log(`ready ${bpf.programInfo(fd).id}`);
setInterval(() => {}, 1 << 30);
