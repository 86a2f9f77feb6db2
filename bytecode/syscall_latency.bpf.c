// SPDX-License-Identifier: GPL-2.0
/* A libbpf-tools style syscall latency histogram: the time from sys_enter to sys_exit of each thread, in
 * log2 buckets of microseconds (`latency_us`), with the filters in .rodata as libbpf-tools set them:
 * `targ_pid` (0: every process), `targ_syscall` (-1: every syscall), `min_us` (shorter calls not counted).
 * The same code runs as raw tracepoints (`raw_tracepoint/sys_enter`) and as BTF-typed ones
 * (`tp_btf/sys_enter`, on kernels that allow them); a loader picks one pair. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_SLOTS 27

volatile const __u32 targ_pid = 0;
volatile const __s32 targ_syscall = -1;
volatile const __u64 min_us = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, __u64);
} starts SEC(".maps");

/* latency_us[i]: calls that took [2^i, 2^(i+1)) microseconds (slot 0 also counts 0 µs). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} latency_us SEC(".maps");

static __always_inline int enter(__s64 id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	if (targ_pid && (pid_tgid >> 32) != targ_pid)
		return 0;
	if (targ_syscall >= 0 && id != targ_syscall)
		return 0;
	__u64 ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&starts, &tid, &ts, BPF_ANY);
	return 0;
}

static __always_inline __u32 log2l(__u64 v)
{
	__u32 slot = 0;
	for (int i = 0; i < MAX_SLOTS - 1 && v > 1; i++) {
		v >>= 1;
		slot++;
	}
	return slot;
}

static __always_inline int leave(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *start = bpf_map_lookup_elem(&starts, &tid);
	if (!start)
		return 0;
	__u64 us = (bpf_ktime_get_ns() - *start) / 1000;
	bpf_map_delete_elem(&starts, &tid);
	if (us < min_us)
		return 0;
	__u32 slot = log2l(us);
	__u64 *count = bpf_map_lookup_elem(&latency_us, &slot);
	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

/* raw tracepoints: args[0] is the pt_regs pointer, args[1] the syscall id (sys_exit: the return value). */
SEC("raw_tracepoint/sys_enter")
int sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	return enter((__s64)ctx->args[1]);
}

SEC("raw_tracepoint/sys_exit")
int sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	return leave();
}

/* BTF-typed raw tracepoints: the same arguments, as an array of u64. */
SEC("tp_btf/sys_enter")
int sys_enter_btf(__u64 *ctx)
{
	return enter((__s64)ctx[1]);
}

SEC("tp_btf/sys_exit")
int sys_exit_btf(__u64 *ctx)
{
	return leave();
}

char LICENSE[] SEC("license") = "GPL";
