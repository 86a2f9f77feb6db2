// SPDX-License-Identifier: GPL-2.0
/* A chain test program: records its run (chain_record.h) and returns `verdict` (XDP_PASS by default). */
#include "chain_record.h"

volatile const __u32 verdict = XDP_PASS;

SEC("xdp")
int chain_xdp(struct xdp_md *ctx)
{
	chain_record();
	return verdict;
}

char LICENSE[] SEC("license") = "GPL";
