// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* bridgewatch: observe frames entering tap-like ports, classify announcements and record
 * whether the port could forward them at that instant. Never changes a packet's fate. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "bridgewatch.h"

#define ETH_P_RARP_ 0x8035
#define ETH_P_LEGACY 0x0835
#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define IPPROTO_ICMPV6_ 58
#define ND_NEIGHBOR_ADVERT 136

/* tunables, set by user space before load */
const volatile __u64 ev_window_ns = 1000000000ULL; /* rate limit window */
const volatile __u32 ev_per_mac = 32;              /* events per {port, mac} per window */
const volatile __u64 ev_per_cpu = 4096;            /* events per CPU per window, all ports */
const volatile __u32 max_macs_per_port = 0;        /* MACs recorded per port, 0 = no limit */
const volatile __u32 arm_await = 0;                /* a new MAC is watched on the uplinks at once */

/* keeps struct bw_event in BTF (ring buffers carry no value type) for the layout check */
const volatile struct bw_event bw_event_layout = {};
const volatile struct bw_frame bw_frame_layout = {};
/* and every enum of the contract (bridgewatch.h) */
const volatile struct bw_contract bw_contract_layout = {};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct bw_key);
	__type(value, struct bw_mac_stats);
} bw_port_macs SEC(".maps");

/* MACs recorded per port: a MAC-flooding guest cannot push other ports' entries out of the LRU */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} bw_port_count SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} bw_events SEC(".maps");

/* kept announcement bytes (see struct bw_frame): rare, so small */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} bw_frames SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BW_FSTAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} bw_frame_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BW_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} bw_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bw_limiter);
} bw_limit SEC(".maps");

struct arp_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
} __attribute__((packed));

struct ipv6_min {
	__be32 vtc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&bw_stats, &idx);

	if (v)
		*v += 1; /* per-CPU: no atomics needed */
}

static __always_inline void fstat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&bw_frame_stats, &idx);

	if (v)
		*v += 1;
}

#include "port_state.bpf.h"
#include "settled.bpf.h"

static __always_inline int is_garp(void *data, void *data_end, __u32 off)
{
	struct arp_ipv4 *arp = data + off;

	if ((void *)(arp + 1) > data_end)
		return 0;
	if (arp->htype != bpf_htons(1) || arp->ptype != bpf_htons(ETH_P_IP) ||
	    arp->hlen != 6 || arp->plen != 4)
		return 0;
	if (arp->op != bpf_htons(1) && arp->op != bpf_htons(2))
		return 0;
	return __builtin_memcmp(arp->spa, arp->tpa, 4) == 0;
}

static __always_inline int is_unsolicited_na(void *data, void *data_end, __u32 off)
{
	struct ipv6_min *ip6 = data + off;
	__u8 *icmp6_type;

	if ((void *)(ip6 + 1) + 1 > data_end)
		return 0;
	if (ip6->nexthdr != IPPROTO_ICMPV6_)
		return 0;
	/* ff02::1, all-nodes */
	if (ip6->daddr[0] != 0xff || ip6->daddr[1] != 0x02 || ip6->daddr[15] != 0x01)
		return 0;
	for (int i = 2; i < 15; i++)
		if (ip6->daddr[i])
			return 0;
	icmp6_type = (void *)(ip6 + 1);
	return *icmp6_type == ND_NEIGHBOR_ADVERT;
}

/* classify the frame; *vlan gets the outer VLAN id found in the frame (if any) */
static __always_inline __u8 classify(void *data, void *data_end, __u16 *vlan)
{
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return BW_KIND_OTHER;
	proto = eth->h_proto;

	/* skip up to two tags (802.1ad outer, 802.1Q inner) */
#pragma unroll
	for (int i = 0; i < 2; i++) {
		__be16 *tag = data + off;

		if (proto != bpf_htons(ETH_P_8021Q_) && proto != bpf_htons(ETH_P_8021AD_))
			break;
		if ((void *)(tag + 2) > data_end)
			return BW_KIND_OTHER;
		if (!*vlan)
			*vlan = bpf_ntohs(tag[0]) & 0x0fff;
		proto = tag[1];
		off += 4;
	}

	switch (bpf_ntohs(proto)) {
	case ETH_P_RARP_:
		return BW_KIND_RARP;
	case ETH_P_LEGACY:
		return BW_KIND_LEGACY;
	case ETH_P_ARP:
		return is_garp(data, data_end, off) ? BW_KIND_GARP : BW_KIND_OTHER;
	case ETH_P_IPV6:
		return is_unsolicited_na(data, data_end, off) ? BW_KIND_NA : BW_KIND_OTHER;
	}
	return BW_KIND_OTHER;
}

#include "uplink.bpf.h" /* uses classify() */

static __always_inline int port_has_room(__u32 ifindex)
{
	__u32 *n;

	if (!max_macs_per_port)
		return 1;
	n = bpf_map_lookup_elem(&bw_port_count, &ifindex);
	return !n || *n < max_macs_per_port;
}

static __always_inline void port_count_inc(__u32 ifindex)
{
	__u32 one = 1, *n;

	if (!max_macs_per_port)
		return;
	n = bpf_map_lookup_elem(&bw_port_count, &ifindex);
	if (n)
		__sync_fetch_and_add(n, 1);
	else if (bpf_map_update_elem(&bw_port_count, &ifindex, &one, BPF_NOEXIST) && (n = bpf_map_lookup_elem(&bw_port_count, &ifindex)))
		__sync_fetch_and_add(n, 1); /* another CPU created it first */
}

/* global events budget per CPU per window */
static __always_inline int global_budget(__u64 now)
{
	__u32 zero = 0;
	struct bw_limiter *l = bpf_map_lookup_elem(&bw_limit, &zero);

	if (!l)
		return 0;
	if (now - l->win_start_ns >= ev_window_ns) {
		l->win_start_ns = now;
		l->events = 0;
	}
	if (l->events >= ev_per_cpu)
		return 0;
	l->events++;
	return 1;
}

/* returns 1 when the event was submitted */
static __always_inline int emit(struct bw_mac_stats *st, const struct bw_key *key, __u64 now,
				 __u8 kind, __u8 flags, __u16 vlan, __u8 state, __u32 len)
{
	struct bw_event *ev;

	/* per-{port, mac} window; shared entry, so a racing CPU may overshoot by a little */
	if (now - st->win_start_ns >= ev_window_ns) {
		st->win_start_ns = now;
		st->win_events = 0;
	}
	if (st->win_events >= ev_per_mac) {
		stat_inc(BW_STAT_DROP_RATE_MAC);
		return 0;
	}
	__sync_fetch_and_add(&st->win_events, 1);
	if (!global_budget(now)) {
		stat_inc(BW_STAT_DROP_RATE_ALL);
		return 0;
	}
	ev = bpf_ringbuf_reserve(&bw_events, sizeof(*ev), 0);
	if (!ev) {
		stat_inc(BW_STAT_DROP_RINGBUF);
		return 0;
	}
	ev->ts_ns = now;
	ev->ifindex = key->ifindex;
	__builtin_memcpy(ev->mac, key->mac, 6);
	ev->kind = kind;
	ev->flags = flags;
	ev->vlan = vlan;
	ev->port_state = state;
	ev->pad = 0;
	ev->len = len;
	ev->pad2 = 0;
	bpf_ringbuf_submit(ev, 0);
	return 1;
}

/* keep the bytes of an announcement its port could not forward (ring bw_frames) */
static __always_inline void keep_frame(struct __sk_buff *ctx, const struct bw_key *key, __u64 now,
				       __u8 kind, __u16 vlan)
{
	struct bw_frame *f;
	__u64 n = ctx->len;

	/* clamp in one 64-bit register right before the call: a constant-bounded length that
	 * older verifiers (6.1) track without relying on how clang moved it through 32-bit ops */
	asm volatile("if %[n] <= %[max] goto +1; %[n] = %[max]" : [n] "+r"(n) : [max] "i"(BW_FRAME_BYTES));
	if (n < sizeof(struct ethhdr))
		return;
	f = bpf_ringbuf_reserve(&bw_frames, sizeof(*f), 0);
	if (!f) {
		fstat_inc(BW_FSTAT_DROP_RINGBUF);
		return;
	}
	if (bpf_skb_load_bytes(ctx, 0, f->data, n)) {
		bpf_ringbuf_discard(f, 0);
		fstat_inc(BW_FSTAT_LOAD_FAIL);
		return;
	}
	f->ts_ns = now;
	f->ifindex = key->ifindex;
	__builtin_memcpy(f->mac, key->mac, 6);
	f->kind = kind;
	f->pad = 0;
	f->vlan = vlan;
	f->caplen = n;
	f->len = ctx->len;
	f->pad2 = 0;
	bpf_ringbuf_submit(f, 0);
	fstat_inc(BW_FSTAT_KEPT);
}


/* the slow path: record the frame in its {port, MAC} entry, emit an event if it is a fact */
static __always_inline void record(struct __sk_buff *ctx, const struct bw_port *port, struct ethhdr *eth,
				   __u8 kind, __u16 vlan, __u8 state)
{
	struct bw_mac_stats *st;
	struct bw_key key = {};
	__u8 flags = 0;
	int fwd, vlan_moved;
	__u64 now;

	stat_inc(BW_STAT_FRAMES);
	/* group or zero source MAC: not a guest */
	if ((eth->h_source[0] & 1) ||
	    !(eth->h_source[0] | eth->h_source[1] | eth->h_source[2] |
	      eth->h_source[3] | eth->h_source[4] | eth->h_source[5])) {
		stat_inc(BW_STAT_BAD_SOURCE);
		return;
	}

	now = bpf_ktime_get_ns();
	fwd = state == BR_STATE_FORWARDING;
	if (fwd)
		flags |= BW_EV_FORWARDING;
	if (state != BW_STATE_NOT_BRIDGE_PORT)
		flags |= BW_EV_BRIDGE_PORT;

	key.ifindex = port->ifindex;
	__builtin_memcpy(key.mac, eth->h_source, 6);

	st = bpf_map_lookup_elem(&bw_port_macs, &key);
	if (!st) {
		/* new {port, mac}: insert, the only map update on the data path */
		struct bw_mac_stats init = {};

		if (!port_has_room(key.ifindex)) {
			stat_inc(BW_STAT_PORT_FULL);
			return;
		}
		init.first_ns = now;
		init.first_state = state;
		init.vlan = vlan;
		if (bpf_map_update_elem(&bw_port_macs, &key, &init, BPF_NOEXIST) == 0) {
			stat_inc(BW_STAT_NEW_MACS);
			port_count_inc(key.ifindex);
			flags |= BW_EV_FIRST;
			if (arm_await)
				await_arm(key.mac); /* before the frame can leave by an uplink */
		}
		st = bpf_map_lookup_elem(&bw_port_macs, &key);
		if (!st) {
			stat_inc(BW_STAT_INSERT_FAIL);
			return;
		}
	}

	/* in-place updates of the existing entry; totals are sums of the kinds */
	st->last_ns = now;
	if (!fwd)
		st->last_unfwd_ns = now;
	else if (!st->first_fwd_ns)
		st->first_fwd_ns = now;
	vlan_moved = st->vlan != vlan;
	if (vlan_moved)
		st->vlan = vlan;
	if (kind != BW_KIND_OTHER)
		st->last_announce_ns = now;
	if (fwd && !st->settled)
		st->settled = 1; /* before the atomic: see after_record() */
	if (kind < BW_KIND_MAX)
		__sync_fetch_and_add(&st->kinds[kind], 1);
	if (!fwd && kind < BW_KIND_MAX)
		__sync_fetch_and_add(&st->unfwd_kinds[kind], 1);
	after_record(&key, vlan, st, now, fwd, vlan_moved);

	if ((flags & BW_EV_FIRST) || kind != BW_KIND_OTHER) {
		int sent = emit(st, &key, now, kind, flags, vlan, state, ctx->len);

		/* an L3 announcement that died here: its bytes, for the replay after the heal */
		if (!fwd && (kind == BW_KIND_GARP || kind == BW_KIND_NA)) {
			if (sent)
				keep_frame(ctx, &key, now, kind, vlan);
			else
				fstat_inc(BW_FSTAT_DROP_EVENT);
		}
	}
}

SEC("tc")
int tc_ingress(struct __sk_buff *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct bw_port port;
	__u16 vlan = 0;
	__u8 kind, state;

	if ((void *)(eth + 1) > data_end)
		return TC_ACT_UNSPEC;
	/* the outer tag may already sit in skb metadata (stripped before the ingress hook) */
	if (ctx->vlan_present)
		vlan = ctx->vlan_tci & 0x0fff;
	/* the ethertype first: only a frame that is no announcement can be settled */
	kind = classify(data, data_end, &vlan);
	port = port_of(ctx);
	/* the port state before the slot: their loads overlap */
	state = port_state(&port);
	if (kind != BW_KIND_OTHER || state != BR_STATE_FORWARDING || !settled(&port, eth->h_source, vlan))
		record(ctx, &port, eth, kind, vlan, state);
	return TC_ACT_UNSPEC; /* == TCX_NEXT: observe only, let later programs run */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
