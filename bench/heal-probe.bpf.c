// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The far end of bench/heal.ts's figure: a TC ingress program on the uplink's peer stamps the
 * first RARP (ethertype 0x8035, after any 802.1Q tag) from each source MAC with
 * bpf_ktime_get_ns (CLOCK_MONOTONIC, the clock of the join's clock_gettime bracket).
 * (An fentry on br_set_state would stamp the transition itself, but tracing programs do not
 * load on this bench's VM kernel: `bpftool feature probe` says program_type tracing is NOT
 * available, and it has no kprobes and no nlmon.)
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct mac_key {
	__u8 mac[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct mac_key);
	__type(value, __u64);
} rarp_ns SEC(".maps");

SEC("tc")
int tc_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct mac_key k = {};
	__u16 proto;
	__u64 now;

	if ((void *)(eth + 1) > end)
		return TC_ACT_UNSPEC;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		if (data + 18 > end)
			return TC_ACT_UNSPEC;
		proto = *(__u16 *)(data + 16);
	}
	if (proto != bpf_htons(0x8035))
		return TC_ACT_UNSPEC;
	now = bpf_ktime_get_ns();
	__builtin_memcpy(k.mac, eth->h_source, 6);
	bpf_map_update_elem(&rarp_ns, &k, &now, BPF_NOEXIST);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
