// SPDX-License-Identifier: GPL-2.0
/* Counts calls to and returns from one kernel function, four ways: kprobe and kretprobe (function chosen
 * at attach time), fentry and fexit (function chosen at load time, `fnName`). Used by the VM tier's probe
 * tests (tests/vm/) and by tests/_caps.ts to find out whether a kernel allows fentry/fexit at all.
 * `target_tgid` (global data) limits counting to one process; 0 counts every process.
 * `freplace_target` is tests/_caps.ts's freplace probe: loaded as an XDP program, then again as an
 * extension (BPF_PROG_TYPE_EXT) of itself. */
#include "counter.h"

COUNTER_MAP(kprobe_calls);
COUNTER_MAP(kretprobe_returns);
COUNTER_MAP(fentry_calls);
COUNTER_MAP(fexit_returns);

volatile const __u32 target_tgid = 0;

static __always_inline int wanted(void)
{
	return !target_tgid || (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("kprobe")
int kprobe_counter(void *ctx)
{
	if (wanted())
		count(&kprobe_calls);
	return 0;
}

SEC("kretprobe")
int kretprobe_counter(void *ctx)
{
	if (wanted())
		count(&kretprobe_returns);
	return 0;
}

SEC("fentry")
int fentry_counter(__u64 *ctx)
{
	if (wanted())
		count(&fentry_calls);
	return 0;
}

SEC("fexit")
int fexit_counter(__u64 *ctx)
{
	if (wanted())
		count(&fexit_returns);
	return 0;
}

SEC("xdp")
int freplace_target(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
