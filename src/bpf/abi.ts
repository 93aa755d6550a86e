// The kernel/user contract of bpf/bridgewatch.h in TypeScript, built on contract.gen.ts (generated
// from the object's BTF by scripts/gen-contract.mjs). The loader checks every struct field by
// field and every enum member by value against the object it loads, so a drift is named.
import { ENUMS, FRAME_STAT_NAMES, KIND_NAMES, STAT_NAMES, STRUCTS } from './contract.gen.js';
export interface Field {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
}
export interface StructLayout {
  readonly name: string;
  readonly size: number;
  readonly fields: readonly Field[];
}

export const KINDS = KIND_NAMES;
export type Kind = (typeof KINDS)[number];
export const ANNOUNCE_KINDS: readonly Kind[] = KINDS.filter((k) => k !== 'other');

const { bw_event_flags: EV, bw_port_state: PS, bw_settled_const: SC, bw_frame_const: FC } = ENUMS;
export const EV_FIRST = EV.BW_EV_FIRST;
export const EV_FORWARDING = EV.BW_EV_FORWARDING;
export const EV_BRIDGE_PORT = EV.BW_EV_BRIDGE_PORT;
export const EV_FABRIC_IN = EV.BW_EV_FABRIC_IN;
export const EV_UPLINK_OUT = EV.BW_EV_UPLINK_OUT;
export const STATE_UNKNOWN = PS.BW_STATE_UNKNOWN;
export const STATE_NOT_BRIDGE_PORT = PS.BW_STATE_NOT_BRIDGE_PORT;
/** the kernel's BR_STATE_* (include/uapi/linux/if_bridge.h), by value */
export const BR_STATES = ['disabled', 'listening', 'learning', 'forwarding', 'blocking'] as const;

/** enum bw_stat: map bw_stats, in index order */
export const STATS = STAT_NAMES;
export type StatName = (typeof STATS)[number];

const layout = (name: keyof typeof STRUCTS): StructLayout => ({ name, size: STRUCTS[name].size, fields: STRUCTS[name].fields });

export const KEY = layout('bw_key');
export const MAC_STATS = layout('bw_mac_stats');
export const EVENT = layout('bw_event');
export const LIMITER = layout('bw_limiter');
export const SETTLED = layout('bw_settled');
/** BW_SETTLED_BITS: a CPU has 1 << this many slots. */
export const SETTLED_BITS = SC.BW_SETTLED_BITS;
/** The one entry of bw_settled: a CPU's slots. */
export const SETTLED_CPU = layout('bw_settled_cpu');
export const EPOCH = layout('bw_epoch');
export const AWAIT_KEY = layout('bw_await_key');
export const AWAIT = layout('bw_await');
/** BW_FRAME_BYTES: the bytes of an announcement the kernel keeps. */
export const FRAME_BYTES = FC.BW_FRAME_BYTES;
export const FRAME = layout('bw_frame');
/** enum bw_frame_stat: map bw_frame_stats, in index order. */
export const FRAME_STATS = FRAME_STAT_NAMES;
export type FrameStatName = (typeof FRAME_STATS)[number];

/** every struct of the contract: all are checked against the object's BTF at load */
export const LAYOUTS: readonly StructLayout[] = (Object.keys(STRUCTS) as (keyof typeof STRUCTS)[]).map(layout);
/** every enum of the contract, likewise */
export const ENUM_LAYOUTS: readonly { name: string; values: Readonly<Record<string, number>> }[] = Object.entries(ENUMS).map(([name, values]) => ({ name, values }));

/** Differences between the contract's enum and the object's, one line each; empty when they agree. */
export function enumDiffs(want: { name: string; values: Readonly<Record<string, number>> }, got: Map<string, number> | undefined): string[] {
  if (!got) return [`enum ${want.name}: missing from the BPF object`];
  const out: string[] = [];
  for (const [n, v] of Object.entries(want.values)) {
    const g = got.get(n);
    if (g === undefined) out.push(`enum ${want.name}: ${n} missing`);
    else if (g !== v) out.push(`enum ${want.name}: ${n} = ${g}, contract says ${v}`);
  }
  for (const n of got.keys()) if (!(n in want.values)) out.push(`enum ${want.name}: ${n} not in the contract`);
  return out;
}

/** What a BTF struct looks like, as read from the object. */
export interface BtfStruct {
  size: number;
  members: Map<string, { offset: number; size: number }>;
}

/** Differences between the contract and the object, one line each; empty when they agree. */
export function layoutDiffs(want: StructLayout, got: BtfStruct | undefined): string[] {
  if (!got) return [`struct ${want.name}: missing from the BPF object`];
  const out: string[] = [];
  if (got.size !== want.size) out.push(`struct ${want.name}: size ${got.size}, contract says ${want.size}`);
  for (const fl of want.fields) {
    const m = got.members.get(fl.name);
    if (!m) out.push(`struct ${want.name}: field ${fl.name} missing`);
    else if (m.offset !== fl.offset || m.size !== fl.size)
      out.push(`struct ${want.name}: field ${fl.name} at offset ${m.offset} size ${m.size}, contract says offset ${fl.offset} size ${fl.size}`);
  }
  return out;
}

const off = (l: StructLayout, name: string): number => {
  const fl = l.fields.find((x) => x.name === name);
  if (!fl) throw new Error(`abi: no field ${name} in ${l.name}`);
  return fl.offset;
};

// offsets resolved once: decoding runs for every map entry on every scrape
const K = { ifindex: off(KEY, 'ifindex'), mac: off(KEY, 'mac') };
const S = {
  firstNs: off(MAC_STATS, 'first_ns'),
  lastNs: off(MAC_STATS, 'last_ns'),
  firstFwdNs: off(MAC_STATS, 'first_fwd_ns'),
  lastUnfwdNs: off(MAC_STATS, 'last_unfwd_ns'),
  lastAnnounceNs: off(MAC_STATS, 'last_announce_ns'),
  kinds: off(MAC_STATS, 'kinds'),
  unfwdKinds: off(MAC_STATS, 'unfwd_kinds'),
  vlan: off(MAC_STATS, 'vlan'),
  firstState: off(MAC_STATS, 'first_state'),
};
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export const macToString = (b: Uint8Array): string =>
  `${HEX[b[0]]}:${HEX[b[1]]}:${HEX[b[2]]}:${HEX[b[3]]}:${HEX[b[4]]}:${HEX[b[5]]}`;

export function macFromString(s: string): Buffer {
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(s);
  if (!m) throw new TypeError(`parse mac ${JSON.stringify(s)}: expected six hex octets like 52:54:00:12:34:56`);
  return Buffer.from(m.slice(1).map((x) => parseInt(x, 16)));
}

export function encodeKey(ifindex: number, mac: Uint8Array): Buffer {
  const b = Buffer.alloc(KEY.size);
  b.writeUInt32LE(ifindex, K.ifindex);
  Buffer.from(mac).copy(b, K.mac, 0, 6);
  return b;
}


export type KindCounts = Record<Kind, number>;
export interface MacStats {
  firstNs: bigint;
  lastNs: bigint;
  firstFwdNs: bigint; // 0n: never seen while forwarding
  lastUnfwdNs: bigint; // 0n: never seen while not forwarding
  lastAnnounceNs: bigint;
  frames: number;
  unfwdFrames: number;
  kinds: KindCounts;
  unfwdKinds: KindCounts;
  vlan: number;
  firstState: number;
}

// counters fit a double exactly (2^53 frames is centuries at line rate)
const kindCounts = (b: Buffer, at: number): KindCounts => ({
  other: Number(b.readBigUInt64LE(at)),
  rarp: Number(b.readBigUInt64LE(at + 8)),
  garp: Number(b.readBigUInt64LE(at + 16)),
  na: Number(b.readBigUInt64LE(at + 24)),
  legacy: Number(b.readBigUInt64LE(at + 32)),
});

export function decodeMacStats(b: Buffer, at = 0): MacStats {
  const kinds = kindCounts(b, at + S.kinds);
  const unfwdKinds = kindCounts(b, at + S.unfwdKinds);
  return {
    firstNs: b.readBigUInt64LE(at + S.firstNs),
    lastNs: b.readBigUInt64LE(at + S.lastNs),
    firstFwdNs: b.readBigUInt64LE(at + S.firstFwdNs),
    lastUnfwdNs: b.readBigUInt64LE(at + S.lastUnfwdNs),
    lastAnnounceNs: b.readBigUInt64LE(at + S.lastAnnounceNs),
    frames: kinds.other + kinds.rarp + kinds.garp + kinds.na + kinds.legacy,
    unfwdFrames: unfwdKinds.other + unfwdKinds.rarp + unfwdKinds.garp + unfwdKinds.na + unfwdKinds.legacy,
    kinds,
    unfwdKinds,
    vlan: b.readUInt16LE(at + S.vlan),
    firstState: b.readUInt8(at + S.firstState),
  };
}

/** Key and value at `keyAt`/`valAt` of batch buffers, as one entry (no intermediate objects). */
export function decodeEntry(keys: Buffer, keyAt: number, vals: Buffer, valAt: number): MacEntry {
  const e = decodeMacStats(vals, valAt) as MacEntry;
  e.ifindex = keys.readUInt32LE(keyAt + K.ifindex);
  e.mac = macToString(keys.subarray(keyAt + K.mac, keyAt + K.mac + 6));
  return e;
}

/** One {port, MAC} entry of bw_port_macs. */
export interface MacEntry extends MacStats {
  ifindex: number;
  mac: string;
}

export interface BpfEvent {
  tsNs: bigint; // CLOCK_MONOTONIC, comparable with process.hrtime.bigint()
  ifindex: number;
  mac: string;
  kind: Kind;
  first: boolean; // first frame of this MAC on this port
  forwarding: boolean; // port was a forwarding bridge port at that instant
  bridgePort: boolean;
  vlan: number;
  portState: number;
  len: number;
  /** set by the uplink programs: 'in' = first unicast to an awaited guest MAC from the fabric,
   * 'out' = that guest's first frame out of an uplink; ifindex is then the uplink's */
  uplink?: 'in' | 'out';
}

export function decodeEvent(b: Buffer): BpfEvent {
  if (b.length < EVENT.size) throw new RangeError(`decode event: ${b.length} bytes, want ${EVENT.size}`);
  const flags = b.readUInt8(off(EVENT, 'flags'));
  return {
    tsNs: b.readBigUInt64LE(off(EVENT, 'ts_ns')),
    ifindex: b.readUInt32LE(off(EVENT, 'ifindex')),
    mac: macToString(b.subarray(off(EVENT, 'mac'))),
    kind: KINDS[b.readUInt8(off(EVENT, 'kind'))] ?? 'other',
    first: (flags & EV_FIRST) !== 0,
    forwarding: (flags & EV_FORWARDING) !== 0,
    bridgePort: (flags & EV_BRIDGE_PORT) !== 0,
    vlan: b.readUInt16LE(off(EVENT, 'vlan')),
    portState: b.readUInt8(off(EVENT, 'port_state')),
    len: b.readUInt32LE(off(EVENT, 'len')),
    ...(flags & EV_FABRIC_IN ? { uplink: 'in' as const } : flags & EV_UPLINK_OUT ? { uplink: 'out' as const } : {}),
  };
}

/** What the uplink programs wrote for an awaited MAC (bw_await); 0n: not seen yet. */
export interface AwaitState {
  outNs: bigint;
  inNs: bigint;
  outIfindex: number;
  inIfindex: number;
}

export function encodeAwaitKey(mac: Uint8Array): Buffer {
  const b = Buffer.alloc(AWAIT_KEY.size);
  Buffer.from(mac).copy(b, off(AWAIT_KEY, 'mac'), 0, 6);
  return b;
}

export function decodeAwait(b: Buffer): AwaitState {
  return {
    outNs: b.readBigUInt64LE(off(AWAIT, 'out_ns')),
    inNs: b.readBigUInt64LE(off(AWAIT, 'in_ns')),
    outIfindex: b.readUInt32LE(off(AWAIT, 'out_ifindex')),
    inIfindex: b.readUInt32LE(off(AWAIT, 'in_ifindex')),
  };
}

/** A kept announcement (bw_frames): the first `data.length` (caplen) of `len` bytes the guest sent. */
export interface BpfFrame {
  tsNs: bigint;
  ifindex: number;
  mac: string;
  kind: Kind;
  vlan: number;
  len: number;
  /** a copy, caplen bytes */
  data: Buffer;
}

export function decodeFrame(b: Buffer): BpfFrame {
  if (b.length < FRAME.size) throw new RangeError(`decode frame: ${b.length} bytes, want ${FRAME.size}`);
  const caplen = b.readUInt16LE(off(FRAME, 'caplen'));
  if (caplen > FRAME_BYTES) throw new RangeError(`decode frame: caplen ${caplen} > ${FRAME_BYTES}`);
  const at = off(FRAME, 'data');
  return {
    tsNs: b.readBigUInt64LE(off(FRAME, 'ts_ns')),
    ifindex: b.readUInt32LE(off(FRAME, 'ifindex')),
    mac: macToString(b.subarray(off(FRAME, 'mac'))),
    kind: KINDS[b.readUInt8(off(FRAME, 'kind'))] ?? 'other',
    vlan: b.readUInt16LE(off(FRAME, 'vlan')),
    len: b.readUInt32LE(off(FRAME, 'len')),
    data: Buffer.from(b.subarray(at, at + caplen)),
  };
}

/** The bw_settled slot of {ifindex, mac}, as the kernel computes it (bridgewatch.h). */
export const settledSlot = (ifindex: number, mac: Uint8Array): number => (mac[4] ^ mac[5] ^ ifindex) & ((1 << SETTLED_BITS) - 1);

/** One CPU's bw_settled slot: frames of kind other counted there instead of in the entry. */
export interface SettledSlot {
  ifindex: number;
  mac: string;
  firstNs: bigint;
  frames: number;
}

export function decodeSettled(b: Buffer, at = 0): SettledSlot {
  return {
    ifindex: b.readUInt32LE(at + off(SETTLED, 'ifindex')),
    mac: macToString(b.subarray(at + off(SETTLED, 'mac'))),
    firstNs: b.readBigUInt64LE(at + off(SETTLED, 'first_ns')),
    frames: Number(b.readBigUInt64LE(at + off(SETTLED, 'frames'))),
  };
}
