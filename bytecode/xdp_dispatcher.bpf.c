// SPDX-License-Identifier: GPL-2.0
/*
 * bpfd's XDP dispatcher, compatible with libxdp's multi-prog protocol version 2: the program is named
 * xdp_dispatcher, its only map is the read-only config, empty slots return 31, and slot i passes on to
 * slot i+1 when bit (1 << verdict) is set in chain_call_actions[i]. The end of the chain passes.
 */
#include "dispatcher.h"

#define XDP_DISPATCHER_RETVAL 31

volatile const struct xdp_dispatcher_config conf = {
	.magic = DISPATCHER_MAGIC,
	.dispatcher_version = DISPATCHER_VERSION,
};

DISPATCHER_SLOTS_ALL(struct xdp_md, XDP_DISPATCHER_RETVAL, XDP_ABORTED)

#define XDP_BIT(ret) (ret)

SEC("xdp")
int xdp_dispatcher(struct xdp_md *ctx)
{
	int ret;

	DISPATCHER_RUN_ALL(ctx, XDP_BIT);
out:
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
