// SPDX-License-Identifier: GPL-2.0
/* Deliberately invalid: dereferences a hash-map value without the NULL check, so the verifier refuses
 * it ("R0 invalid mem access 'map_value_or_null'"). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 16);
} never_loaded SEC(".maps");

SEC("xdp")
int unchecked_lookup(struct xdp_md *ctx)
{
	__u32 key = ctx->ingress_ifindex;
	__u64 *value = bpf_map_lookup_elem(&never_loaded, &key);
	*value += 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
