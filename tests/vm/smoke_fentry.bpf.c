// SPDX-License-Identifier: GPL-2.0
/* The VM tier's self-test: an fentry/fexit pair on do_unlinkat that the guest loads with bpftool. The host
 * kernel refuses both (EPERM before verification); Debian's 6.1 kernel in the VM must accept them. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("fentry/do_unlinkat")
int smoke_fentry(__u64 *ctx)
{
	return 0;
}

SEC("fexit/do_unlinkat")
int smoke_fexit(__u64 *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
