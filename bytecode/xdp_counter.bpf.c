// SPDX-License-Identifier: GPL-2.0
/* Counts every packet and returns `verdict` (XDP_PASS unless global data says otherwise). */
#include "counter.h"

COUNTER_MAP(xdp_packets);

volatile const __u32 verdict = XDP_PASS;

SEC("xdp")
int xdp_counter(struct xdp_md *ctx)
{
	count(&xdp_packets);
	return verdict;
}

char LICENSE[] SEC("license") = "GPL";
