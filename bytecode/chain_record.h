/*
 * For programs in a chain test: each program has a tag (0..15, global data) and records, per packet, a
 * tick from a counter all programs of the test share (load them with mapOwnerId). The program with the
 * larger last tick ran later on the last packet, so sorting tags by chain_seen gives the run order; tags
 * whose count did not move did not run.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} chain_ticks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 16);
} chain_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 16);
} chain_counts SEC(".maps");

volatile const __u32 tag = 0;

static __always_inline void chain_record(void)
{
	__u32 zero = 0, key = tag & 15;
	__u64 *tick = bpf_map_lookup_elem(&chain_ticks, &zero);
	__u64 *seen = bpf_map_lookup_elem(&chain_seen, &key);
	__u64 *count = bpf_map_lookup_elem(&chain_counts, &key);

	if (!tick || !seen || !count)
		return;
	*seen = __sync_fetch_and_add(tick, 1) + 1;
	__sync_fetch_and_add(count, 1);
}
