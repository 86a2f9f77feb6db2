// SPDX-License-Identifier: GPL-2.0
/*
 * bpfd's tc dispatcher (one cls_bpf filter in direct-action mode on a clsact qdisc, for kernels without
 * TCX): the XDP dispatcher's protocol with tc verdicts. Empty slots return 30; slot i passes on when bit
 * (1 << (verdict + 1)) is set in chain_call_actions[i], so TC_ACT_UNSPEC (-1) is bit 0. The end of the
 * chain returns TC_ACT_OK.
 */
#include "dispatcher.h"
#include <linux/pkt_cls.h>

#define TC_DISPATCHER_RETVAL 30

volatile const struct xdp_dispatcher_config conf = {
	.magic = DISPATCHER_MAGIC,
	.dispatcher_version = DISPATCHER_VERSION,
};

DISPATCHER_SLOTS_ALL(struct __sk_buff, TC_DISPATCHER_RETVAL, TC_ACT_SHOT)

#define TC_BIT(ret) ((ret) + 1)

SEC("tc")
int tc_dispatcher(struct __sk_buff *skb)
{
	int ret;

	DISPATCHER_RUN_ALL(skb, TC_BIT);
out:
	return TC_ACT_OK;
}

/* Not part of the dispatcher: a TCX placeholder that lets the next program run (TC_ACT_UNSPEC). bpfd
 * parks it where a program is about to move, so the move is two in-place link updates (see
 * kernel/chains/tcx.ts). */
SEC("tc")
int tc_pass_on(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
