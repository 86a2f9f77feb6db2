// SPDX-License-Identifier: GPL-2.0
/* Counts getppid() calls of one process (`target_tgid`, set through global data; 0 counts all). */
#include "counter.h"

COUNTER_MAP(syscalls);

volatile const __u32 target_tgid = 0;

SEC("tracepoint/syscalls/sys_enter_getppid")
int enter_getppid(void *ctx)
{
	if (target_tgid && (bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	count(&syscalls);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
