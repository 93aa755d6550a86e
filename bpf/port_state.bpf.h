/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* port_state(): BR_STATE_* of the ingress device at this instant, or BW_STATE_NOT_BRIDGE_PORT.
 * Read on every frame (the settled path too), so it must stay a few loads. */
#ifndef BW_PORT_STATE_BPF_H
#define BW_PORT_STATE_BPF_H

#define BR_STATE_FORWARDING 3

#ifdef BW_STATE_FROM_MAP
/*
 * Kernels before 6.3 have no bpf_cast_to_kern_ctx, so the program cannot read skb->dev: this
 * build takes each port's state from a map user space keeps from rtnetlink. Less exact (netlink
 * lags the kernel by a little), still exact timestamps and classification.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} bw_port_state SEC(".maps");

/* the ingress device, read once per frame */
struct bw_port {
	__u32 ifindex;
};

static __always_inline struct bw_port port_of(struct __sk_buff *ctx)
{
	struct bw_port port = { .ifindex = ctx->ifindex };

	return port;
}

static __always_inline __u8 port_state(const struct bw_port *port)
{
	__u8 *st = bpf_map_lookup_elem(&bw_port_state, &port->ifindex);

	return st ? *st : BW_STATE_NOT_BRIDGE_PORT;
}
#else
/* minimal kernel types, relocated with CO-RE against the running kernel's BTF */
struct net_device {
	int ifindex;
	unsigned long long priv_flags : 32;
	void *rx_handler;
	void *rx_handler_data;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
} __attribute__((preserve_access_index));

struct net_bridge_port {
	__u8 state;
} __attribute__((preserve_access_index));

/* a vmlinux struct of plain bytes (the kernel's sockaddr_storage), to read a bridge module's */
struct __kernel_sockaddr_storage {
	char bytes[128];
} __attribute__((preserve_access_index));

enum netdev_priv_flags___bw {
	IFF_BRIDGE_PORT___bw = 512,
};

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern void *bpf_rdonly_cast(void *obj, __u32 btf_id) __ksym;

/* the ingress device, read once per frame */
struct bw_port {
	__u32 ifindex;
	struct net_device *dev;
};

static __always_inline struct bw_port port_of(struct __sk_buff *ctx)
{
	/* a trusted kernel pointer: plain (fault-safe) loads from here on, no helper calls */
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
	struct bw_port port = { .dev = skb->dev };

	port.ifindex = port.dev ? port.dev->ifindex : 0;
	return port;
}

/*
 * p->state for p = dev->rx_handler_data, a void * to the verifier. bpf_rdonly_cast makes it a
 * pointer to load through (untrusted, read-only, fault-safe), but takes vmlinux types only and
 * the bridge is often a module: cast to a vmlinux struct of plain bytes and load the byte at
 * state's offset, which CO-RE takes from whichever BTF has net_bridge_port. A probe read (a
 * helper call, ~30 ns) only if that offset ever left the 128 bytes. The offset is a constant to
 * the verifier: the branch not taken is never loaded.
 */
static __always_inline __u8 bridge_port_state(void *p)
{
	__u32 off = bpf_core_field_offset(struct net_bridge_port, state);

#ifndef BW_BRIDGE_STATE_PROBE /* tests: the fallback */
	if (off < sizeof(struct __kernel_sockaddr_storage))
		return *((__u8 *)bpf_rdonly_cast(p, bpf_core_type_id_kernel(struct __kernel_sockaddr_storage)) + off);
#endif
	return BPF_CORE_READ((struct net_bridge_port *)p, state);
}

static __always_inline __u8 port_state(const struct bw_port *port)
{
	struct net_device *dev = port->dev;
	struct net_bridge_port *p;
	__u64 flags;

	if (!dev || !dev->rx_handler)
		return BW_STATE_NOT_BRIDGE_PORT;
	flags = BPF_CORE_READ_BITFIELD(dev, priv_flags);
	if (!(flags & bpf_core_enum_value(enum netdev_priv_flags___bw, IFF_BRIDGE_PORT___bw)))
		return BW_STATE_NOT_BRIDGE_PORT; /* macvlan, bond, ovs ...: not ours */
	if (!bpf_core_type_exists(struct net_bridge_port))
		return BR_STATE_FORWARDING; /* no bridge BTF: an attached bridge rx_handler is the best we know */
	p = dev->rx_handler_data;
	if (!p)
		return BW_STATE_NOT_BRIDGE_PORT;
	return bridge_port_state(p);
}
#endif

#endif /* BW_PORT_STATE_BPF_H */
