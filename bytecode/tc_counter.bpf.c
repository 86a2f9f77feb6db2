// SPDX-License-Identifier: GPL-2.0
/* Counts every packet and returns `verdict` (TC_ACT_OK unless global data says otherwise). */
#include "counter.h"
#include <linux/pkt_cls.h>

COUNTER_MAP(tc_packets);

volatile const __s32 verdict = TC_ACT_OK;

SEC("tc")
int tc_counter(struct __sk_buff *skb)
{
	count(&tc_packets);
	return verdict;
}

char LICENSE[] SEC("license") = "GPL";
