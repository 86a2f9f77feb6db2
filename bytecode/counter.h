/* Shared by bpfd's example and test programs: one u64 counter in an array map named after the program. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define COUNTER_MAP(map_name)                                                                            \
	struct {                                                                                         \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                                        \
		__type(key, __u32);                                                                      \
		__type(value, __u64);                                                                    \
		__uint(max_entries, 1);                                                                  \
	} map_name SEC(".maps")

static __always_inline void count(void *map)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(map, &key);
	if (value)
		__sync_fetch_and_add(value, 1);
}
