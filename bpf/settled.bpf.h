/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The settled fast path. A data frame (kind other) of a {port, MAC} whose last recorded frame
 * was forwarded, on a port that forwards now, carries no new fact: it is counted in this CPU's
 * slot and nothing else happens (no clock, no atomics, no shared writes). Everything else is
 * recorded in bw_port_macs as before. What unsettles a slot:
 *   - a frame of a settled MAC that the port could not forward, or a VLAN change: the port's
 *     epoch is bumped, so every CPU records the MAC's next frame (the first forwarded frame
 *     after an unforwarded one is always recorded: "delivered since" stays exact);
 *   - a new tick (jiffies): one frame per tick and CPU is recorded, so last_ns lags the latest
 *     frame by at most one tick (1-10 ms);
 *   - another {port, MAC} hashing to the same slot: the frames counted there move to their entry.
 * Needs bw_port_macs, stat_inc() and struct bw_port defined before inclusion.
 */
#ifndef BW_SETTLED_BPF_H
#define BW_SETTLED_BPF_H

/* one entry: a constant key keeps the lookup off the hash's dependency chain */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bw_settled_cpu);
} bw_settled SEC(".maps");

static __always_inline struct bw_settled *slot_at(__u32 idx)
{
	__u32 zero = 0;
	struct bw_settled_cpu *c = bpf_map_lookup_elem(&bw_settled, &zero);
	__u64 i = idx;

	/* mask in a 64-bit register right before the pointer math: 6.1's verifier loses the
	 * bounds of a mask clang folded into 32-bit ops ("unbounded min value") */
	asm volatile("%[i] &= %[m]" : [i] "+r"(i) : [m] "i"(BW_SETTLED_SLOTS - 1));
	return c ? &c->slot[i] : 0;
}

/* a global array, not a map: a plain load on the hot path, no lookup */
struct bw_epoch bw_epochs[BW_EPOCH_SLOTS] __attribute__((aligned(64)));

/* the key as two words: ifindex | mac[0..3] << 32, and mac[4..5] | vlan << 16 */
struct bw_slot_key {
	__u64 lo;
	__u32 hi;
	__u32 idx;
};

static __always_inline struct bw_slot_key slot_key(__u32 ifindex, const __u8 *mac, __u16 vlan)
{
	__u32 w0 = *(const __u32 *)mac;       /* mac[0..3], little endian */
	__u32 w1 = *(const __u16 *)(mac + 4); /* mac[4..5] */
	struct bw_slot_key k = {
		.lo = ifindex | (__u64)w0 << 32,
		.hi = w1 | (__u32)vlan << 16,
		.idx = (w1 ^ w1 >> 8 ^ ifindex) & (BW_SETTLED_SLOTS - 1),
	};
	return k;
}

static __always_inline __u64 *epoch_of(__u32 ifindex)
{
	return &bw_epochs[ifindex & (BW_EPOCH_SLOTS - 1)].n;
}

/* the hot path, for a data frame on a forwarding port: 1 when it was settled and counted */
static __always_inline int settled(const struct bw_port *port, const __u8 *mac, __u16 vlan)
{
	struct bw_slot_key k = slot_key(port->ifindex, mac, vlan);
	struct bw_settled *s = slot_at(k.idx);

	if (!s || *(__u64 *)s != k.lo || *(__u32 *)((void *)s + 8) != k.hi)
		return 0;
	if (s->epoch != *epoch_of(port->ifindex))
		return 0;
#ifndef BW_SETTLED_NO_TICK /* tests: only the epoch unsettles */
	if (s->jiffies != bpf_jiffies64())
		return 0;
#endif
	s->frames++; /* per-CPU: no atomics */
	stat_inc(BW_STAT_SETTLED); /* and not BW_STAT_FRAMES: user space adds the two */
	return 1;
}

/* a colliding key takes the slot: the frames counted there go to their entry */
static __always_inline void slot_flush(struct bw_settled *s)
{
	struct bw_key key = { .ifindex = s->ifindex };
	struct bw_mac_stats *st;

	__builtin_memcpy(key.mac, s->mac, 6);
	st = bpf_map_lookup_elem(&bw_port_macs, &key);
	if (st && st->first_ns == s->first_ns)
		__sync_fetch_and_add(&st->kinds[BW_KIND_OTHER], s->frames);
}

/*
 * After a frame was recorded in st and an atomic ordered the writes. Unforwarded: st->settled
 * is read only now, and settle() set it before its own atomic: either this sees the flag and
 * bumps the epoch, or settle() sees this frame in st and does not settle. A VLAN change always
 * bumps. Forwarded: settle on this CPU.
 */
static __always_inline void after_record(const struct bw_key *key, __u16 vlan, struct bw_mac_stats *st,
					 __u64 now, int fwd, int vlan_moved)
{
	struct bw_slot_key k;
	struct bw_settled *s;
	__u64 epoch;

	if (!fwd) {
		if (st->settled) {
			st->settled = 0;
			__sync_fetch_and_add(epoch_of(key->ifindex), 1);
		}
		return;
	}
	if (vlan_moved)
		__sync_fetch_and_add(epoch_of(key->ifindex), 1);
	k = slot_key(key->ifindex, key->mac, vlan);
	s = slot_at(k.idx);
	if (!s)
		return;
	epoch = *(volatile __u64 *)epoch_of(key->ifindex);
	if (st->last_unfwd_ns > now || st->vlan != vlan)
		return; /* a racing CPU recorded a newer fact */
	if (*(__u64 *)s != k.lo || *(__u16 *)(s->mac + 4) != *(__u16 *)(key->mac + 4) ||
	    s->first_ns != st->first_ns) {
		if (s->frames && s->ifindex)
			slot_flush(s);
		*(__u64 *)s = k.lo;
		__builtin_memcpy(s->mac + 4, key->mac + 4, 2);
		s->first_ns = st->first_ns;
		s->frames = 0;
	}
	s->vlan = vlan;
	s->epoch = epoch;
	s->jiffies = bpf_jiffies64();
}

#endif /* BW_SETTLED_BPF_H */
