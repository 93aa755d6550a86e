// The guest's own L3 announcements (gratuitous ARP, unsolicited NA) that died on a port that
// could not forward, kept to be replayed after the heal. Pure and bounded: a few frames per
// {port, MAC}, a fixed number of {port, MAC}s, every refusal counted. Only bytes the guest sent
// are ever kept, and only when the address it announces is its own Ethernet source: a guest
// cannot make bridgewatch announce someone else's address.
import { macToString, type BpfFrame } from '../bpf/abi.js';

export type ReplayKind = 'garp' | 'na';
export const REPLAY_KINDS: readonly ReplayKind[] = ['garp', 'na'];

/**
 * Why a frame was not kept. spoofed: the announced hardware address is not the Ethernet source;
 * truncated: longer than the kernel keeps (replaying a part would forge the rest); tagged: the
 * guest tagged it itself (the bridge's VLAN handling, not its bytes, decides a replay's tag);
 * malformed: not a gratuitous ARP / unsolicited NA after all; evicted: pushed out to stay bounded;
 * the kernel's: ring_full (bw_frames full), rate_limit (its event was rate-limited), load_failed.
 */
export const NOT_KEPT_REASONS = ['spoofed', 'truncated', 'tagged', 'malformed', 'evicted', 'ring_full', 'rate_limit', 'load_failed'] as const;
export type NotKeptReason = (typeof NOT_KEPT_REASONS)[number];

export interface ReplayFrame {
  kind: ReplayKind;
  tsNs: bigint;
  data: Buffer;
}

const ETH_HLEN = 14;
const ETH_P_ARP = 0x0806;
const ETH_P_IPV6 = 0x86dd;
const VLAN_TPIDS = [0x8100, 0x88a8, 0x9100];
const ICMPV6 = 58;
const ND_NA = 136;
const NA_LEN = 24; // type, code, checksum, flags, target
const OPT_SOURCE_LL = 1;
const OPT_TARGET_LL = 2;

/**
 * Whether `f` may be replayed as it is: a whole, untagged gratuitous ARP whose sender hardware
 * address is the Ethernet source, or a whole, untagged unsolicited NA (to ff02::1) whose
 * link-layer address options, if any, carry the Ethernet source.
 */
export function checkAnnouncement(f: Pick<BpfFrame, 'kind' | 'vlan' | 'len' | 'data'>): { ok: true } | { ok: false; reason: NotKeptReason } {
  const d = f.data;
  if (d.length < f.len) return { ok: false, reason: 'truncated' };
  if (d.length < ETH_HLEN || d.length > f.len) return { ok: false, reason: 'malformed' };
  const type = d.readUInt16BE(12);
  if (f.vlan !== 0 || VLAN_TPIDS.includes(type)) return { ok: false, reason: 'tagged' };
  const src = d.subarray(6, 12);
  if (f.kind === 'garp') {
    if (type !== ETH_P_ARP || d.length < ETH_HLEN + 28) return { ok: false, reason: 'malformed' };
    const a = d.subarray(ETH_HLEN);
    if (a.readUInt16BE(0) !== 1 || a.readUInt16BE(2) !== 0x0800 || a[4] !== 6 || a[5] !== 4) return { ok: false, reason: 'malformed' };
    const op = a.readUInt16BE(6);
    if (op !== 1 && op !== 2) return { ok: false, reason: 'malformed' };
    if (!a.subarray(14, 18).equals(a.subarray(24, 28))) return { ok: false, reason: 'malformed' }; // not gratuitous
    if (!a.subarray(8, 14).equals(src)) return { ok: false, reason: 'spoofed' };
    return { ok: true };
  }
  if (f.kind === 'na') {
    if (type !== ETH_P_IPV6 || d.length < ETH_HLEN + 40 + NA_LEN) return { ok: false, reason: 'malformed' };
    const ip = d.subarray(ETH_HLEN);
    if (ip[0] >> 4 !== 6 || ip[6] !== ICMPV6) return { ok: false, reason: 'malformed' };
    const allNodes = ip[24] === 0xff && ip[25] === 0x02 && ip[39] === 0x01 && ip.subarray(26, 39).every((b) => b === 0);
    if (!allNodes) return { ok: false, reason: 'malformed' };
    const payload = ip.readUInt16BE(4);
    if (payload < NA_LEN || 40 + payload > ip.length) return { ok: false, reason: 'malformed' };
    const icmp = ip.subarray(40, 40 + payload);
    if (icmp[0] !== ND_NA || icmp[1] !== 0) return { ok: false, reason: 'malformed' };
    // options (RFC 4861 4.6): type, length in units of 8 octets; a link-layer address must be ours
    for (let o = NA_LEN; o < icmp.length; ) {
      if (o + 2 > icmp.length || icmp[o + 1] === 0 || o + 8 * icmp[o + 1] > icmp.length) return { ok: false, reason: 'malformed' };
      const t = icmp[o];
      const n = 8 * icmp[o + 1];
      if ((t === OPT_TARGET_LL || t === OPT_SOURCE_LL) && (n !== 8 || !icmp.subarray(o + 2, o + 8).equals(src))) return { ok: false, reason: 'spoofed' };
      o += n;
    }
    return { ok: true };
  }
  return { ok: false, reason: 'malformed' };
}

export interface ReplayStoreOptions {
  /** frames kept per {port, MAC} and kind: the latest distinct ones */
  perKind?: number;
  /** {port, MAC}s kept; past it the one updated longest ago goes (counted as evicted) */
  maxMacs?: number;
}

interface Entry {
  ifindex: number;
  mac: string;
  frames: Record<ReplayKind, ReplayFrame[]>;
}

export type KeepResult = 'kept' | 'duplicate' | NotKeptReason;

export class ReplayStore {
  readonly perKind: number;
  readonly maxMacs: number;
  /** frames not kept, by reason (user space's; the kernel counts its own) */
  readonly notKept: Record<NotKeptReason, number> = Object.fromEntries(NOT_KEPT_REASONS.map((r) => [r, 0])) as Record<NotKeptReason, number>;
  kept = 0;
  // insertion order is recency: an update deletes and re-inserts
  private readonly entries = new Map<string, Entry>();

  constructor(o: ReplayStoreOptions = {}) {
    this.perKind = o.perKind ?? 2;
    this.maxMacs = o.maxMacs ?? 4096;
  }

  /** Keep a frame the kernel saw on a port that could not forward, if it may ever be replayed. */
  keep(f: BpfFrame): KeepResult {
    if (f.kind !== 'garp' && f.kind !== 'na') return this.refuse('malformed');
    const check = checkAnnouncement(f);
    if (!check.ok) return this.refuse(check.reason);
    // the kernel keys the frame by its Ethernet source; anything else is not this MAC's frame
    if (macToString(f.data.subarray(6, 12)) !== f.mac) return this.refuse('spoofed');
    const key = `${f.ifindex}|${f.mac}`;
    let e = this.entries.get(key);
    if (e) this.entries.delete(key);
    else {
      if (this.entries.size >= this.maxMacs) this.evictOldest();
      e = { ifindex: f.ifindex, mac: f.mac, frames: { garp: [], na: [] } };
    }
    this.entries.set(key, e);
    const list = e.frames[f.kind];
    const same = list.findIndex((x) => x.data.equals(f.data));
    if (same >= 0) {
      // the same bytes again (a guest repeats its announcements): now the latest, once
      const [x] = list.splice(same, 1);
      x.tsNs = f.tsNs;
      list.push(x);
      return 'duplicate';
    }
    list.push({ kind: f.kind, tsNs: f.tsNs, data: Buffer.from(f.data) });
    if (list.length > this.perKind) list.shift();
    this.kept++;
    return 'kept';
  }

  /** The frames kept for {port, MAC}, oldest first (gARPs, then NAs), removed from the store. */
  take(ifindex: number, mac: string): ReplayFrame[] {
    const key = `${ifindex}|${mac}`;
    const e = this.entries.get(key);
    if (!e) return [];
    this.entries.delete(key);
    return REPLAY_KINDS.flatMap((k) => e.frames[k]);
  }

  /** What is kept for {port, MAC}, without removing it. */
  peek(ifindex: number, mac: string): readonly ReplayFrame[] {
    const e = this.entries.get(`${ifindex}|${mac}`);
    return e ? REPLAY_KINDS.flatMap((k) => e.frames[k]) : [];
  }

  /** The port is gone: its guests' frames go with it. */
  forgetPort(ifindex: number): number {
    let n = 0;
    for (const [key, e] of this.entries)
      if (e.ifindex === ifindex) {
        this.entries.delete(key);
        n++;
      }
    return n;
  }

  /** {port, MAC}s with frames kept. */
  get size(): number {
    return this.entries.size;
  }

  /** Bytes of frames kept. */
  get bytes(): number {
    let n = 0;
    for (const e of this.entries.values()) for (const k of REPLAY_KINDS) for (const f of e.frames[k]) n += f.data.length;
    return n;
  }

  private refuse(reason: NotKeptReason): NotKeptReason {
    this.notKept[reason]++;
    return reason;
  }

  private evictOldest(): void {
    const first = this.entries.keys().next();
    if (first.done) return;
    const e = this.entries.get(first.value)!;
    this.entries.delete(first.value);
    this.notKept.evicted += e.frames.garp.length + e.frames.na.length;
  }
}
