// SPDX-License-Identifier: GPL-2.0
/* Counts entries to and returns from a user-space function (attach point chosen at attach time). */
#include "counter.h"

COUNTER_MAP(calls);
COUNTER_MAP(returns);

SEC("uprobe")
int uprobe_counter(void *ctx)
{
	count(&calls);
	return 0;
}

SEC("uretprobe")
int uretprobe_counter(void *ctx)
{
	count(&returns);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
