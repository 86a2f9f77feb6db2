// SPDX-License-Identifier: GPL-2.0
/*
 * A chain test program for tc and TCX: records its run (chain_record.h) and returns `verdict`
 * (TC_ACT_UNSPEC by default, which TCX and cls_bpf take as "go on to the next program").
 */
#include "chain_record.h"
#include <linux/pkt_cls.h>

volatile const __s32 verdict = TC_ACT_UNSPEC;

SEC("tc")
int chain_tc(struct __sk_buff *skb)
{
	chain_record();
	return verdict;
}

char LICENSE[] SEC("license") = "GPL";
