/**
 * The struct layouts and constants in ffi/abi.ts against the C headers they come from (libbpf 1.1.2's
 * and the kernel's UAPI, from Debian's libbpf-dev and linux-libc-dev): a C program prints `offsetof`
 * and `sizeof`, and every number must match. A wrong offset would silently corrupt FFI calls.
 */
import assert from "node:assert/strict";
import * as abi from "../../../ffi/abi.ts";
import { errno } from "../../../ffi/errno.ts";

const FIELDS: Array<[string, string, number]> = [
  ["bpf_object_open_opts", "kernel_log_buf", abi.ObjectOpenOpts.kernelLogBuf],
  ["bpf_object_open_opts", "kernel_log_size", abi.ObjectOpenOpts.kernelLogSize],
  ["bpf_object_open_opts", "kernel_log_level", abi.ObjectOpenOpts.kernelLogLevel],
  ["bpf_tc_hook", "ifindex", abi.TcHook.ifindex],
  ["bpf_tc_hook", "attach_point", abi.TcHook.attachPoint],
  ["bpf_tc_hook", "parent", abi.TcHook.parent],
  ["bpf_tc_opts", "prog_fd", abi.TcOpts.progFd],
  ["bpf_tc_opts", "flags", abi.TcOpts.flags],
  ["bpf_tc_opts", "prog_id", abi.TcOpts.progId],
  ["bpf_tc_opts", "handle", abi.TcOpts.handle],
  ["bpf_tc_opts", "priority", abi.TcOpts.priority],
  ["bpf_link_create_opts", "flags", abi.LinkCreateOpts.flags],
  ["bpf_obj_get_opts", "file_flags", abi.ObjGetOpts.fileFlags],
  ["bpf_link_create_opts", "perf_event.bpf_cookie", abi.LinkCreateOpts.perfEventBpfCookie],
  ["bpf_prog_info", "type", abi.ProgInfo.type],
  ["bpf_prog_info", "id", abi.ProgInfo.id],
  ["bpf_prog_info", "tag", abi.ProgInfo.tag],
  ["bpf_prog_info", "jited_prog_len", abi.ProgInfo.jitedProgLen],
  ["bpf_prog_info", "xlated_prog_len", abi.ProgInfo.xlatedProgLen],
  ["bpf_prog_info", "load_time", abi.ProgInfo.loadTime],
  ["bpf_prog_info", "created_by_uid", abi.ProgInfo.createdByUid],
  ["bpf_prog_info", "nr_map_ids", abi.ProgInfo.nrMapIds],
  ["bpf_prog_info", "map_ids", abi.ProgInfo.mapIds],
  ["bpf_prog_info", "name", abi.ProgInfo.name],
  ["bpf_prog_info", "ifindex", abi.ProgInfo.ifindex],
  ["bpf_prog_info", "btf_id", abi.ProgInfo.btfId],
  ["bpf_prog_info", "run_time_ns", abi.ProgInfo.runTimeNs],
  ["bpf_prog_info", "run_cnt", abi.ProgInfo.runCnt],
  ["bpf_prog_info", "verified_insns", abi.ProgInfo.verifiedInsns],
  ["bpf_prog_info", "attach_btf_id", abi.ProgInfo.attachBtfId],
  ["bpf_link_info", "type", abi.LinkInfo.type],
  ["bpf_link_info", "id", abi.LinkInfo.id],
  ["bpf_link_info", "prog_id", abi.LinkInfo.progId],
  ["bpf_link_info", "xdp.ifindex", abi.LinkInfo.unionStart],
  ["bpf_map_info", "type", abi.MapInfo.type],
  ["bpf_map_info", "id", abi.MapInfo.id],
  ["bpf_map_info", "key_size", abi.MapInfo.keySize],
  ["bpf_map_info", "value_size", abi.MapInfo.valueSize],
  ["bpf_map_info", "max_entries", abi.MapInfo.maxEntries],
  ["bpf_map_info", "map_flags", abi.MapInfo.mapFlags],
  ["bpf_map_info", "name", abi.MapInfo.name],
  ["perf_event_attr", "type", abi.PerfEventAttr.type],
  ["perf_event_attr", "size", abi.PerfEventAttr.sizeField],
  ["perf_event_attr", "config", abi.PerfEventAttr.config],
  ["perf_event_attr", "config1", abi.PerfEventAttr.config1],
  ["perf_event_attr", "config2", abi.PerfEventAttr.config2],
  ["bpf_test_run_opts", "data_in", abi.TestRunOpts.dataIn],
  ["bpf_test_run_opts", "data_out", abi.TestRunOpts.dataOut],
  ["bpf_test_run_opts", "data_size_in", abi.TestRunOpts.dataSizeIn],
  ["bpf_test_run_opts", "data_size_out", abi.TestRunOpts.dataSizeOut],
  ["bpf_test_run_opts", "retval", abi.TestRunOpts.retval],
  ["bpf_test_run_opts", "repeat", abi.TestRunOpts.repeat],
  ["bpf_test_run_opts", "duration", abi.TestRunOpts.duration],
  ["btf_var_secinfo", "type", abi.BtfVarSecinfo.type],
  ["btf_var_secinfo", "offset", abi.BtfVarSecinfo.offset],
  ["btf_var_secinfo", "size", abi.BtfVarSecinfo.bytes],
  ["btf_type", "name_off", abi.BtfType.nameOff],
  ["btf_type", "info", abi.BtfType.info],
  ["btf_type", "size", abi.BtfType.sizeOrType],
];

const SIZES: Array<[string, number]> = [
  ["bpf_object_open_opts", abi.ObjectOpenOpts.size],
  ["bpf_tc_hook", abi.TcHook.size],
  ["bpf_tc_opts", abi.TcOpts.size],
  ["bpf_link_create_opts", abi.LinkCreateOpts.size],
  ["bpf_obj_get_opts", abi.ObjGetOpts.size],
  ["bpf_prog_info", abi.ProgInfo.size],
  ["bpf_map_info", abi.MapInfo.size],
  ["perf_event_attr", abi.PerfEventAttr.size],
  ["bpf_test_run_opts", abi.TestRunOpts.size],
  ["btf_type", abi.BtfType.size],
  ["btf_var_secinfo", abi.BtfVarSecinfo.size],
];

const CONSTANTS: Array<[string, number]> = [
  ["BPF_PROG_TYPE_KPROBE", abi.BpfProgType.KPROBE],
  ["BPF_PROG_TYPE_SCHED_CLS", abi.BpfProgType.SCHED_CLS],
  ["BPF_PROG_TYPE_TRACEPOINT", abi.BpfProgType.TRACEPOINT],
  ["BPF_PROG_TYPE_XDP", abi.BpfProgType.XDP],
  ["BPF_PROG_TYPE_TRACING", abi.BpfProgType.TRACING],
  ["BPF_PROG_TYPE_EXT", abi.BpfProgType.EXT],
  ["BPF_TRACE_FENTRY", abi.BpfAttachType.TRACE_FENTRY],
  ["BPF_TRACE_FEXIT", abi.BpfAttachType.TRACE_FEXIT],
  ["BPF_XDP", abi.BpfAttachType.XDP],
  ["BPF_PERF_EVENT", abi.BpfAttachType.PERF_EVENT],
  ["BTF_KIND_DATASEC", abi.BTF_KIND_DATASEC],
  ["XDP_FLAGS_SKB_MODE", abi.XdpFlags.SKB_MODE],
  ["XDP_FLAGS_DRV_MODE", abi.XdpFlags.DRV_MODE],
  ["XDP_FLAGS_HW_MODE", abi.XdpFlags.HW_MODE],
  ["BPF_TC_INGRESS", abi.TcAttachPoint.INGRESS],
  ["BPF_TC_EGRESS", abi.TcAttachPoint.EGRESS],
  ["PERF_TYPE_TRACEPOINT", abi.PERF_TYPE_TRACEPOINT],
  ["PERF_FLAG_FD_CLOEXEC", abi.PERF_FLAG_FD_CLOEXEC],
  ["__NR_perf_event_open", abi.SYS_perf_event_open],
  ["CLONE_NEWNET", abi.CLONE_NEWNET],
  ["BPF_F_RDONLY", abi.BPF_F_RDONLY],
  ["EPERM", errno("EPERM")],
  ["ENOENT", errno("ENOENT")],
  ["EBUSY", errno("EBUSY")],
  ["EOPNOTSUPP", errno("EOPNOTSUPP")],
];

Deno.test("ffi/abi.ts matches libbpf's and the kernel's C headers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-abi-" });
  try {
    const program = `#define _GNU_SOURCE
#include <stdio.h>
#include <stddef.h>
#include <errno.h>
#include <sched.h>
#include <sys/syscall.h>
#include <linux/if_link.h>
#include <linux/perf_event.h>
#include <linux/btf.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
int main(void) {
${FIELDS.map(([s, f]) => `  printf("%zu\\n", offsetof(struct ${s}, ${f}));`).join("\n")}
${SIZES.map(([s]) => `  printf("%zu\\n", sizeof(struct ${s}));`).join("\n")}
${CONSTANTS.map(([c]) => `  printf("%ld\\n", (long)(${c}));`).join("\n")}
  return 0;
}`;
    await Deno.writeTextFile(`${dir}/abi.c`, program);
    const cc = await new Deno.Command("gcc", { args: [`${dir}/abi.c`, "-o", `${dir}/abi`], stderr: "piped" })
      .output();
    assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const { stdout } = await new Deno.Command(`${dir}/abi`, { stdout: "piped" }).output();
    const values = new TextDecoder().decode(stdout).trim().split("\n").map(Number);
    const expected = [
      ...FIELDS.map(([s, f, v]) => [`offsetof(${s}, ${f})`, v] as const),
      ...SIZES.map(([s, v]) => [`sizeof(${s})`, v] as const),
      ...CONSTANTS.map(([c, v]) => [c, v] as const),
    ];
    const mismatches = expected.filter(([, v], i) => values[i] !== v).map(([name, v]) =>
      `${name}: abi.ts ${v}, C ${values[expected.findIndex(([n]) => n === name)]}`
    );
    assert.deepEqual(mismatches, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dispatcher config: slots encode into libxdp's 124 bytes and decode back", () => {
  const slots = [
    { chainCallActions: (1 << 2) | (1 << 31), runPrio: 10, programFlags: 0 },
    { chainCallActions: 1 << 1, runPrio: 50, programFlags: abi.BPF_F_XDP_HAS_FRAGS },
  ];
  const bytes = abi.encodeDispatcherConfig(slots);
  assert.equal(bytes.length, 124);
  assert.deepEqual([...bytes.subarray(0, 4)], [abi.DISPATCHER_MAGIC, abi.DISPATCHER_VERSION, 2, 0]);
  assert.deepEqual(abi.decodeDispatcherConfig(bytes), {
    magic: abi.DISPATCHER_MAGIC,
    version: abi.DISPATCHER_VERSION,
    isXdpFrags: false,
    slots: slots.map((s) => ({ ...s, chainCallActions: s.chainCallActions >>> 0 })),
  });
  const other = new Uint8Array(bytes);
  other[0] = 1;
  assert.equal(abi.decodeDispatcherConfig(other), undefined, "not libxdp's magic");
  assert.equal(abi.decodeDispatcherConfig(new Uint8Array(10)), undefined);
  assert.throws(() => abi.encodeDispatcherConfig(Array(11).fill(slots[0])), /10 slots/);
});
