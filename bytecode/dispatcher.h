/*
 * The multi-prog dispatcher protocol of libxdp (version 2), shared by bpfd's XDP and tc dispatchers: a
 * main program calls up to ten slot functions prog0..prog9 in order; user programs replace the slot
 * functions as freplace extensions. The configuration is read-only data set before load, so the
 * verifier removes the slots that are not enabled.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define DISPATCHER_MAGIC 236
#define DISPATCHER_VERSION 2
#define DISPATCHER_SLOTS 10

struct xdp_dispatcher_config {
	__u8 magic;              /* DISPATCHER_MAGIC */
	__u8 dispatcher_version; /* DISPATCHER_VERSION */
	__u8 num_progs_enabled;  /* slots 0..num_progs_enabled-1 run */
	__u8 is_xdp_frags;       /* every program handles multi-buffer packets */
	__u32 chain_call_actions[DISPATCHER_SLOTS]; /* per slot: return values that go on to the next slot */
	__u32 run_prios[DISPATCHER_SLOTS];          /* per slot: its priority, for whoever rebuilds the chain */
	__u32 program_flags[DISPATCHER_SLOTS];      /* per slot: BPF_F_XDP_HAS_FRAGS */
};

/* An empty slot: returns the "dispatcher_return" value. The volatile keeps the compiler from folding the
 * call away, and the ctx test keeps the verifier from assuming the result. */
#define DISPATCHER_FUNC(name, ctx_type, retval, abort)                                                    \
	__attribute__((noinline)) int name(ctx_type *ctx)                                              \
	{                                                                                                \
		volatile int ret = retval;                                                               \
		if (!ctx)                                                                                \
			return abort;                                                                    \
		return ret;                                                                              \
	}
#define DISPATCHER_SLOT(n, ctx_type, retval, abort) DISPATCHER_FUNC(prog##n, ctx_type, retval, abort)

/* Runs slot n when enabled; stops the chain with its verdict unless chain_call_actions[n] has its bit. */
#define DISPATCHER_RUN(n, ctx, bit_of)                                                                    \
	do {                                                                                             \
		if (conf.num_progs_enabled <= n)                                                         \
			goto out;                                                                        \
		ret = prog##n(ctx);                                                                      \
		if (!((1U << (bit_of(ret))) & conf.chain_call_actions[n]))                               \
			return ret;                                                                      \
	} while (0)

#define DISPATCHER_SLOTS_ALL(ctx_type, retval, abort)                                                     \
	DISPATCHER_SLOT(0, ctx_type, retval, abort)                                                      \
	DISPATCHER_SLOT(1, ctx_type, retval, abort)                                                      \
	DISPATCHER_SLOT(2, ctx_type, retval, abort)                                                      \
	DISPATCHER_SLOT(3, ctx_type, retval, abort)                                                      \
	DISPATCHER_SLOT(4, ctx_type, retval, abort)                                                      \
	DISPATCHER_SLOT(5, ctx_type, retval, abort)                                                      \
	DISPATCHER_SLOT(6, ctx_type, retval, abort)                                                      \
	DISPATCHER_SLOT(7, ctx_type, retval, abort)                                                      \
	DISPATCHER_SLOT(8, ctx_type, retval, abort)                                                      \
	DISPATCHER_SLOT(9, ctx_type, retval, abort)                                                      \
	DISPATCHER_FUNC(compat_test, ctx_type, retval, abort)

#define DISPATCHER_RUN_ALL(ctx, bit_of)                                                                   \
	DISPATCHER_RUN(0, ctx, bit_of);                                                                  \
	DISPATCHER_RUN(1, ctx, bit_of);                                                                  \
	DISPATCHER_RUN(2, ctx, bit_of);                                                                  \
	DISPATCHER_RUN(3, ctx, bit_of);                                                                  \
	DISPATCHER_RUN(4, ctx, bit_of);                                                                  \
	DISPATCHER_RUN(5, ctx, bit_of);                                                                  \
	DISPATCHER_RUN(6, ctx, bit_of);                                                                  \
	DISPATCHER_RUN(7, ctx, bit_of);                                                                  \
	DISPATCHER_RUN(8, ctx, bit_of);                                                                  \
	DISPATCHER_RUN(9, ctx, bit_of)
