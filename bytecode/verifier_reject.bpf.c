// SPDX-License-Identifier: GPL-2.0
/* Deliberately invalid: dereferences a map value without the NULL check, so the verifier refuses it. */
#include "counter.h"

COUNTER_MAP(never_loaded);

SEC("xdp")
int unchecked_lookup(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&never_loaded, &key);
	*value += 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
