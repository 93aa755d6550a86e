/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* bridgewatch kernel/user contract: everything that crosses the boundary.
 * src/bpf/abi.ts mirrors these layouts and checks them against this object's BTF at load. */
#ifndef BRIDGEWATCH_H
#define BRIDGEWATCH_H

#include <linux/types.h>

/* frame kinds; announcements are every kind except OTHER */
enum bw_kind {
	BW_KIND_OTHER = 0,
	BW_KIND_RARP = 1,   /* ethertype 0x8035 */
	BW_KIND_GARP = 2,   /* ARP request/reply with sender IP == target IP */
	BW_KIND_NA = 3,     /* ICMPv6 neighbour advertisement to ff02::1 */
	BW_KIND_LEGACY = 4, /* ethertype 0x0835, old qemu-kvm */
	BW_KIND_MAX = 5,
};

/* event flags */
enum bw_event_flags {
	BW_EV_FIRST = 1,      /* first frame of this MAC on this port */
	BW_EV_FORWARDING = 2, /* the port was a forwarding bridge port at that instant */
	BW_EV_BRIDGE_PORT = 4,/* the device was a bridge port (any state) */
	BW_EV_FABRIC_IN = 8,  /* uplink ingress: first unicast frame to an awaited guest MAC */
	BW_EV_UPLINK_OUT = 16,/* uplink egress: first frame from an awaited guest MAC */
};

/* port_state values: BR_STATE_* (0 disabled .. 4 blocking), or one of these */
enum bw_port_state {
	BW_STATE_UNKNOWN = 0xfe,
	BW_STATE_NOT_BRIDGE_PORT = 0xff,
};

/* global per-CPU counters (map bw_stats, index = enum) */
enum bw_stat {
	BW_STAT_FRAMES = 0,         /* frames seen on attached ports, settled ones not included */
	BW_STAT_NEW_MACS = 1,       /* new {port, mac} entries */
	BW_STAT_BAD_SOURCE = 2,     /* frames with a group or zero source MAC (not recorded) */
	BW_STAT_DROP_RATE_MAC = 3,  /* events suppressed by the per-{port,mac} limit */
	BW_STAT_DROP_RATE_ALL = 4,  /* events suppressed by the global limit */
	BW_STAT_DROP_RINGBUF = 5,   /* events lost: ring buffer full */
	BW_STAT_INSERT_FAIL = 6,    /* map insert failed */
	BW_STAT_PORT_FULL = 7,      /* new MAC not recorded: its port has max_macs_per_port */
	BW_STAT_SETTLED = 8,        /* frames that took the settled path (user space adds them to FRAMES) */
	BW_STAT_MAX = 9,
};

/* key of bw_port_macs */
struct bw_key {
	__u32 ifindex;
	__u8 mac[6];
	__u16 pad;
};

/* value of bw_port_macs; times are bpf_ktime_get_ns (CLOCK_MONOTONIC) */
struct bw_mac_stats {
	__u64 first_ns;         /* first frame */
	__u64 last_ns;          /* latest recorded frame: a settled MAC's, at most a tick behind */
	__u64 first_fwd_ns;     /* first frame while forwarding, 0 = none yet */
	__u64 last_unfwd_ns;    /* latest frame while not forwarding, 0 = none */
	__u64 last_announce_ns; /* latest announcement, 0 = none */
	__u64 kinds[BW_KIND_MAX];       /* frames per kind; OTHER leaves out settled ones (bw_settled) */
	__u64 unfwd_kinds[BW_KIND_MAX]; /* of those, frames while the port could not forward */
	__u64 win_start_ns;     /* event rate limit window */
	__u32 win_events;
	__u16 vlan;             /* latest outer VLAN id, 0 = untagged */
	__u8 first_state;       /* port state at the first frame */
	__u8 settled;           /* 1: its last recorded frame was forwarded, a CPU may hold it settled */
};

/* ring buffer record */
struct bw_event {
	__u64 ts_ns;
	__u32 ifindex;
	__u8 mac[6];
	__u8 kind;       /* enum bw_kind */
	__u8 flags;      /* enum bw_event_flags */
	__u16 vlan;      /* outer VLAN id, 0 = untagged */
	__u8 port_state; /* BR_STATE_* or BW_STATE_* */
	__u8 pad;
	__u32 len;       /* frame length */
	__u32 pad2;
};

/* key of bw_await: a guest MAC awaiting the fabric (convergence, bpf/uplink.bpf.h) */
struct bw_await_key {
	__u8 mac[6];
	__u16 pad;
};

/* value of bw_await; user space inserts it zeroed, the uplink programs fill it once */
struct bw_await {
	__u64 out_ns;      /* first frame from the MAC out of an uplink, 0 = none yet */
	__u64 in_ns;       /* first unicast frame to the MAC into an uplink, 0 = none yet */
	__u32 out_ifindex;
	__u32 in_ifindex;
};

/*
 * Settled fast path. A {port, MAC} whose last recorded frame was forwarded is "settled" on a CPU
 * while that CPU's slot holds it: its next data frames on a forwarding port carry no new fact
 * and are only counted in the slot. Slot index (user space computes it too):
 *   slot = (mac[4] ^ mac[5] ^ ifindex) & (BW_SETTLED_SLOTS - 1)
 */
enum bw_settled_const {
	BW_SETTLED_BITS = 8,
	BW_SETTLED_SLOTS = 1 << BW_SETTLED_BITS, /* per CPU */
	BW_EPOCH_SLOTS = 256, /* ports share an epoch when their ifindex is equal modulo this */
};

/* one slot of bw_settled */
struct bw_settled {
	__u32 ifindex;  /* 0: empty */
	__u8 mac[6];
	__u16 vlan;     /* the outer VLAN id recorded in the entry */
	__u32 pad;
	__u64 first_ns; /* first_ns of the entry the frames belong to (a recreated entry starts over) */
	__u64 epoch;    /* bw_epoch of the port when settled: a bump unsettles every CPU's slot */
	__u64 jiffies;  /* tick of the last frame recorded in the entry: one recorded frame per tick */
	__u64 frames;   /* settled frames (kind other) not in the entry's kinds[OTHER]; user space adds them */
};

/* value of bw_settled (per-CPU array of one entry) */
struct bw_settled_cpu {
	struct bw_settled slot[BW_SETTLED_SLOTS];
};

/* bw_epochs[ifindex % BW_EPOCH_SLOTS] (a global array): bumped when a settled MAC's frame is
 * not forwarded or a MAC changes VLAN; one cache line each, read by every settled frame */
struct bw_epoch {
	__u64 n;
	__u64 pad[7];
};

/* global event limiter (per CPU) */
struct bw_limiter {
	__u64 win_start_ns;
	__u64 events;
};

/*
 * Kept announcements (ring bw_frames): a gratuitous ARP or unsolicited NA that arrived while
 * its port could not forward, its first BW_FRAME_BYTES bytes as the guest sent them, for user
 * space to replay after the heal. Emitted only when the frame's bw_event was (same limits).
 */
enum bw_frame_const {
	BW_FRAME_BYTES = 128,
};

/* ring buffer record of bw_frames */
struct bw_frame {
	__u64 ts_ns;
	__u32 ifindex;
	__u8 mac[6];
	__u8 kind;       /* BW_KIND_GARP or BW_KIND_NA */
	__u8 pad;
	__u16 vlan;      /* outer VLAN id (in the bytes or in skb metadata), 0 = untagged */
	__u16 caplen;    /* bytes in data: min(len, BW_FRAME_BYTES) */
	__u32 len;       /* frame length */
	__u32 pad2;
	__u8 data[BW_FRAME_BYTES];
};

/* per-CPU counters of map bw_frame_stats (index = enum) */
enum bw_frame_stat {
	BW_FSTAT_KEPT = 0,          /* frames put in bw_frames */
	BW_FSTAT_DROP_RINGBUF = 1,  /* lost: bw_frames full */
	BW_FSTAT_DROP_EVENT = 2,    /* not kept: the frame's event was rate-limited or lost */
	BW_FSTAT_LOAD_FAIL = 3,     /* bpf_skb_load_bytes failed */
	BW_FSTAT_MAX = 4,
};

/* Every enum of the contract, so that the object's BTF carries them all: scripts/gen-contract.mjs
 * generates src/bpf/contract.gen.ts from it, and the loader checks an object against that. */
struct bw_contract {
	enum bw_kind kind;
	enum bw_event_flags event_flags;
	enum bw_port_state port_state;
	enum bw_stat stat;
	enum bw_settled_const settled_const;
	enum bw_frame_const frame_const;
	enum bw_frame_stat frame_stat;
};

_Static_assert(sizeof(struct bw_key) == 12, "bw_key layout");
_Static_assert(sizeof(struct bw_mac_stats) == 136, "bw_mac_stats layout");
_Static_assert(sizeof(struct bw_event) == 32, "bw_event layout");
_Static_assert(sizeof(struct bw_limiter) == 16, "bw_limiter layout");
_Static_assert(sizeof(struct bw_settled) == 48, "bw_settled layout");
_Static_assert(sizeof(struct bw_epoch) == 64, "bw_epoch layout");
_Static_assert(sizeof(struct bw_frame) == 32 + BW_FRAME_BYTES, "bw_frame layout");
_Static_assert(sizeof(struct bw_settled_cpu) == 48 * BW_SETTLED_SLOTS, "bw_settled_cpu layout");

#endif /* BRIDGEWATCH_H */
