// SPDX-License-Identifier: GPL-2.0
/*
 * An application's XDP program whose behaviour its agent configures through maps: counts packets
 * (gate_packets), drops them while gate_drop[0] is non-zero, and reports each packet's length and verdict
 * on a ring buffer (gate_events) for a consumer in user space.
 */
#include "counter.h"

COUNTER_MAP(gate_packets);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} gate_drop SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} gate_events SEC(".maps");

/* One ring buffer record: the packet's length and the verdict given. */
struct gate_event {
	__u32 len;
	__u32 verdict;
};

SEC("xdp")
int xdp_gate(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u32 *drop = bpf_map_lookup_elem(&gate_drop, &key);
	__u32 verdict = drop && *drop ? XDP_DROP : XDP_PASS;
	struct gate_event *e;

	count(&gate_packets);
	e = bpf_ringbuf_reserve(&gate_events, sizeof(*e), 0);
	if (e) {
		e->len = ctx->data_end - ctx->data;
		e->verdict = verdict;
		bpf_ringbuf_submit(e, 0);
	}
	return verdict;
}

char LICENSE[] SEC("license") = "GPL";
