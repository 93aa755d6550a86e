/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Convergence: on a bridge's uplinks, the first unicast frame from the fabric to a guest MAC
 * (ingress: the network delivers to this host again) and the guest's first frame out (egress:
 * its own traffic reached the fabric). Only MACs user space put in bw_await are looked at, and
 * with none there the programs return after one inlined array load. Never another host's MAC. */
#ifndef BW_UPLINK_BPF_H
#define BW_UPLINK_BPF_H

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, struct bw_await_key);
	__type(value, struct bw_await);
} bw_await SEC(".maps");

/* bw_await_n[0]: 0 when bw_await is empty (the programs then do nothing). The kernel sets it on
 * an insert; user space clears it only after finding the map empty, then looks again. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bw_await_n SEC(".maps");

/* Watch a guest MAC from its first frame on, so that frame itself is seen leaving by an uplink
 * (user space learns of it only from the event, too late). User space drops what it does not
 * want: MACs of ports that were there before it, or ones it stopped watching. */
static __always_inline void await_arm(const __u8 *mac)
{
	struct bw_await_key key = {};
	struct bw_await zero = {};
	__u32 idx = 0, *n;

	__builtin_memcpy(key.mac, mac, 6);
	if (bpf_map_update_elem(&bw_await, &key, &zero, BPF_NOEXIST))
		return; /* watched already, or full */
	n = bpf_map_lookup_elem(&bw_await_n, &idx);
	if (n)
		*n = 1;
}

static __always_inline void emit_uplink(__u32 ifindex, const __u8 *mac, __u64 now, __u8 flags, __u32 len)
{
	struct bw_event *ev = bpf_ringbuf_reserve(&bw_events, sizeof(*ev), 0);

	if (!ev) {
		stat_inc(BW_STAT_DROP_RINGBUF);
		return;
	}
	ev->ts_ns = now;
	ev->ifindex = ifindex;
	__builtin_memcpy(ev->mac, mac, 6);
	ev->kind = BW_KIND_OTHER;
	ev->flags = flags;
	ev->vlan = 0;
	ev->port_state = BW_STATE_UNKNOWN;
	ev->pad = 0;
	ev->len = len;
	ev->pad2 = 0;
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline int uplink(struct __sk_buff *ctx, int in)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct bw_await_key key = {};
	struct bw_await *a;
	__u32 zero = 0, *n;
	__u8 *mac;
	__u64 now;

	n = bpf_map_lookup_elem(&bw_await_n, &zero);
	if (!n || !*n)
		return TC_ACT_UNSPEC;
	if ((void *)(eth + 1) > data_end)
		return TC_ACT_UNSPEC;
	mac = in ? eth->h_dest : eth->h_source;
	if (mac[0] & 1)
		return TC_ACT_UNSPEC; /* broadcast/multicast: delivered to everyone, proves nothing */
	__builtin_memcpy(key.mac, mac, 6);
	a = bpf_map_lookup_elem(&bw_await, &key);
	if (!a)
		return TC_ACT_UNSPEC;
	/* once per arming; two CPUs racing may both write and emit: user space keeps the earliest */
	if (in ? a->in_ns : a->out_ns)
		return TC_ACT_UNSPEC;
	if (!in) {
		__u16 vlan = 0;

		/* an announcement (the guest's, or one bridgewatch sent for it) asks for no answer:
		 * only traffic that may be answered makes a guest unconverged when nothing comes back */
		if (classify(data, data_end, &vlan) != BW_KIND_OTHER)
			return TC_ACT_UNSPEC;
	}
	now = bpf_ktime_get_ns();
	if (in) {
		a->in_ns = now;
		a->in_ifindex = ctx->ifindex;
	} else {
		a->out_ns = now;
		a->out_ifindex = ctx->ifindex;
	}
	emit_uplink(ctx->ifindex, key.mac, now, in ? BW_EV_FABRIC_IN : BW_EV_UPLINK_OUT, ctx->len);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int tc_uplink_in(struct __sk_buff *ctx)
{
	return uplink(ctx, 1);
}

SEC("tc")
int tc_uplink_out(struct __sk_buff *ctx)
{
	return uplink(ctx, 0);
}

#endif
