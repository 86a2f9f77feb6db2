// SPDX-License-Identifier: GPL-2.0
/* A sampling profiler, as libbpf-tools' profile: run on a CPU-clock perf event (one per CPU), it counts
 * the samples that land in each process (`samples`, by tgid) and in all (`total`); `targ_pid` in .rodata
 * limits it to one process (0: every process, the idle task excluded). */
#include <linux/bpf.h>
#include <linux/bpf_perf_event.h>
#include <bpf/bpf_helpers.h>
#include "counter.h"

volatile const __u32 targ_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, __u64);
} samples SEC(".maps");

COUNTER_MAP(total);

SEC("perf_event")
int do_sample(struct bpf_perf_event_data *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == 0 || (targ_pid && tgid != targ_pid))
		return 0;
	__u64 one = 1, *seen = bpf_map_lookup_elem(&samples, &tgid);
	if (seen)
		__sync_fetch_and_add(seen, 1);
	else
		bpf_map_update_elem(&samples, &tgid, &one, BPF_NOEXIST);
	count(&total);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
