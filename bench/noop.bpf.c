// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* baseline for the benchmark: a TC program that does nothing */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int tc_ingress(struct __sk_buff *ctx)
{
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
