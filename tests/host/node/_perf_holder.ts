/**
 * A helper process that attaches a uprobe program the way bcc does, without a BPF link:
 * `perf_event_open` on the uprobe PMU, then `ioctl(PERF_EVENT_IOC_SET_BPF)`. It closes its program fd (the
 * perf event holds the program), prints `{"programId":N,"perfFd":N}` and stays until its stdin closes.
 *
 * Usage: deno run -A _perf_holder.ts OBJECT PROGRAM BINARY FUNCTION
 */
import { functionOffset } from "../../../ffi/elf.ts";
import * as bpf from "../../../ffi/libbpf.ts";
import { perfEventOpen, perfEventSetBpf } from "../../../ffi/libc.ts";
import { BpfObject } from "../../../ffi/object.ts";

const [objectPath, program, binary, fnName] = Deno.args;
const obj = BpfObject.open(objectPath);
let programId: number, perfFd: number;
try {
  obj.load();
  const progFd = obj.programFd(program);
  programId = bpf.programInfo(progFd).id;
  const type = Number(await Deno.readTextFile("/sys/bus/event_source/devices/uprobe/type"));
  const offset = await functionOffset(binary, fnName);
  perfFd = perfEventOpen({ type, config: 0n, probe: binary, offset: BigInt(offset) }, -1, 0);
  perfEventSetBpf(perfFd, progFd);
} finally {
  obj.close();
}
console.log(JSON.stringify({ programId, perfFd }));
for await (const _ of Deno.stdin.readable) { /* until the test closes stdin */ }
