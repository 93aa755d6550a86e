// The guest's own L3 announcements replayed by the built daemon: a guest resumes on a tap in no
// bridge and sends, as a virtio guest with GUEST_ANNOUNCE does, a gratuitous ARP and an
// unsolicited NA (plus a hostile gARP claiming another hardware address); the tap joins late.
// The independent witnesses: tcpdump on the uplink's peer (what left the host), tshark decoding
// it, and the bytes compared with what the guest wrote.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rarpFrame } from '../../src/announce/frames.js';
import { ANNOUNCE_DEFAULTS, announceOffsets } from '../../src/announce/schedule.js';
import { findExecutable } from '../../src/lab/qemu.js';
import type { FactView, PortView } from '../../src/tracker/types.js';
import { startCapture, stopAllCaptures, type PcapPacket } from '../fixtures/pcap.js';
import { sampleValue, seriesOf } from '../helpers/daemon-metrics.js';
import { cliMissing, DaemonProcess, killAllDaemons, until } from '../helpers/daemon-process.js';
import { arp, mac, neighbour, qemuRarp } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { missing } from '../helpers/kernel.js';
import { bridgeWithUplink, cleanupAll, TestNetns, tempStateDir } from '../helpers/netns.js';
import { scaled } from '../helpers/time-scale.js';

const tools = ['tcpdump', 'tshark'].filter((t) => !findExecutable(t));
const skip = cliMissing() || missing.bpf || missing.tun || missing.bridge || (tools.length ? `${tools.join(', ')} not in PATH (apt-get install ${tools.join(' ')})` : '');
const ROUNDS = announceOffsets(ANNOUNCE_DEFAULTS).length;
const LAST_MS = announceOffsets(ANNOUNCE_DEFAULTS).at(-1)!;

const guests: Guest[] = [];
let dir = '';

afterAll(async () => {
  await killAllDaemons();
  await stopAllCaptures();
  for (const g of guests) g.close();
  cleanupAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const hex = (b: Buffer) => b.toString('hex');
const hexes = (p: PcapPacket[]) => p.map((x) => hex(x.data));

/** What a virtio guest with GUEST_ANNOUNCE sends after resuming: one gARP per IPv4 address, one NA per IPv6 address. */
function guestAnnouncements(m: Buffer, v4: string, v6: string): { garp: Buffer; na: Buffer } {
  return { garp: arp(m, 1, v4, v4).subarray(0, 42), na: neighbour(m, v6) }; // unpadded, as a guest's stack writes them
}

/** tshark's decoding of a pcap: one row per frame. */
function tshark(file: string): string[][] {
  const fields = ['eth.src', 'arp.opcode', 'arp.src.hw_mac', 'arp.src.proto_ipv4', 'arp.isgratuitous', 'icmpv6.type', 'icmpv6.nd.na.target_address', 'icmpv6.opt.linkaddr'];
  const out = execFileSync('tshark', ['-r', file, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
}

describe.skipIf(!!skip)("replay of the guest's own gARP and NA after a late join", () => {
  let ns: TestNetns;
  let d: DaemonProcess;
  const port = (name: string, ok: (p: PortView) => boolean, what: string) =>
    until(`${name}: ${what}`, () => d.get(`/api/v1/ports/${name}`), (r) => r.status === 200 && ok(r.json as PortView), scaled(10_000)).then((r) => r.json as PortView);
  const metric = async (name: string, labels: Record<string, string>) => sampleValue(await d.metrics(), name, labels);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bwt-replay-'));
    ns = bridgeWithUplink('rpl');
    d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir()], { readyMs: scaled(15_000) });
  }, scaled(30_000));

  it('replays them byte for byte after the RARP in each round, only after forwarding; refuses and counts a hostile gARP; never another MAC', async () => {
    const M = '52:54:00:5e:00:01';
    const OTHER = '52:54:00:5e:00:02'; // a guest on another tap that never joins
    const file = join(dir, 'up0p.pcap');
    const cap = await startCapture(ns.name, 'up0p', file, ['ether', 'src', M, 'or', 'ether', 'src', OTHER], 'in');
    const g = new Guest(ns, 'tap0', mac(M));
    const o = new Guest(ns, 'tap1', mac(OTHER));
    guests.push(g, o);
    await port('tap0', (p) => p.bridge === '', 'watched before joining');
    await port('tap1', (p) => p.bridge === '', 'watched');

    const own = guestAnnouncements(mac(M), '10.77.0.5', 'fe80::5054:ff:fe5e:1');
    // the same gARP with another station's address as sender: a guest trying to take it over
    const hostile = Buffer.from(own.garp);
    mac('52:54:00:66:66:66').copy(hostile, 22);
    hostile.set([10, 77, 0, 9], 28);
    hostile.set([10, 77, 0, 9], 38);
    g.send(qemuRarp(mac(M)), own.garp, own.na, hostile);
    const others = guestAnnouncements(mac(OTHER), '10.77.0.6', 'fe80::5054:ff:fe5e:2');
    o.send(others.garp, others.na);
    await port('tap0', (p) => p.macs[0]?.framesBeforeForwarding === 4, '4 frames seen before forwarding');
    await port('tap1', (p) => p.macs[0]?.framesBeforeForwarding === 2, '2 frames seen');
    await until('the hostile gARP refused', () => metric('bridgewatch_announcements_not_kept_total', { reason: 'spoofed' }), (v) => v === 1, scaled(3000));

    const joinedNs = BigInt(Date.now()) * 1_000_000n;
    ns.ip('link', 'set', 'tap0', 'master', 'br0');
    await port('tap0', (p) => p.verdict === 'late' && p.timeline.some((f) => f.type === 'announcement_replayed'), 'late, and a replay');
    await until('the schedule done', () => metric('bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'late_attach' }), (v) => v === ROUNDS, scaled(LAST_MS + 3000));
    await sleep(300);
    const got = (await cap.stop()).packets;

    // on the wire: each round is QEMU's RARP, then the guest's gARP and NA exactly as it wrote them
    expect(hexes(got)).toEqual(Array.from({ length: ROUNDS }, () => [hex(rarpFrame(M)), hex(own.garp), hex(own.na)]).flat());
    expect(got[0].tsNs, 'nothing left before the join').toBeGreaterThan(joinedNs);
    // tshark, independently: a gratuitous ARP from M for 10.77.0.5, an NA for M's address with M as target link-layer address
    const rows = tshark(file);
    expect(rows).toHaveLength(3 * ROUNDS);
    expect(rows[1]).toEqual([M, '1', M, '10.77.0.5', '1', '', '', '']);
    expect(rows[2]).toEqual([M, '', '', '', '', '136', 'fe80::5054:ff:fe5e:1', M]);
    expect(rows.filter((r) => r.includes('10.77.0.9') || r.includes('52:54:00:66:66:66')), 'the hostile gARP never left').toEqual([]);
    expect(rows.filter((r) => r[0] === OTHER), 'another MAC never replayed').toEqual([]);

    // counted, and on the timeline after the port forwarded and after each round's RARP
    expect(await metric('bridgewatch_announcements_replayed_total', { bridge: 'br0', kind: 'garp' })).toBe(ROUNDS);
    expect(await metric('bridgewatch_announcements_replayed_total', { bridge: 'br0', kind: 'na' })).toBe(ROUNDS);
    expect(await metric('bridgewatch_announcements_not_kept_total', { reason: 'spoofed' })).toBe(1);
    const p = await port('tap0', () => true, 'read');
    const tl = p.timeline as FactView[];
    const replays = tl.filter((f) => f.type === 'announcement_replayed');
    expect(replays.map((f) => [f.mac, f.kind, f.detail])).toEqual(
      Array.from({ length: ROUNDS }, (_, i) => [
        [M, 'garp', `round ${i + 1} via up0 (late_attach)`],
        [M, 'na', `round ${i + 1} via up0 (late_attach)`],
      ]).flat(),
    );
    const fwdAt = tl.findIndex((f) => f.type === 'state' && f.state === 'forwarding');
    expect(fwdAt).toBeGreaterThan(-1);
    expect(tl.indexOf(replays[0])).toBeGreaterThan(tl.findIndex((f) => f.type === 'rarp_sent'));
    expect(BigInt(replays[0].monoNs)).toBeGreaterThan(BigInt(tl[fwdAt].monoNs));
  });

  it('a late guest that lost only RARPs gets RARPs and no replay: nothing is replayed that it did not send', async () => {
    const M = '52:54:00:5e:00:03';
    const g = new Guest(ns, 'tap2', mac(M));
    guests.push(g);
    await port('tap2', (p) => p.bridge === '', 'watched');
    g.send(qemuRarp(mac(M)));
    await port('tap2', (p) => p.macs[0]?.framesBeforeForwarding === 1, 'a RARP before forwarding');
    const before = await metric('bridgewatch_announcements_replayed_total', { bridge: 'br0', kind: 'garp' });
    ns.ip('link', 'set', 'tap2', 'master', 'br0');
    await port('tap2', (p) => p.timeline.some((f) => f.type === 'rarp_sent'), 'a RARP sent');
    await sleep(LAST_MS + 300);
    expect(await metric('bridgewatch_announcements_replayed_total', { bridge: 'br0', kind: 'garp' })).toBe(before);
    expect((await port('tap2', () => true, 'read')).timeline.some((f) => f.type === 'announcement_replayed')).toBe(false);
  });
});

describe.skipIf(!!skip)('replay under --announce dry-run', () => {
  it('sends nothing: no RARP, no replay; the decision is counted', async () => {
    const ns = bridgeWithUplink('rpldry');
    const d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir(), '--announce', 'dry-run'], { readyMs: scaled(15_000) });
    const M = '52:54:00:5e:00:04';
    const cap = await startCapture(ns.name, 'up0p', join(dir, 'dry.pcap'), ['ether', 'src', M], 'in');
    const g = new Guest(ns, 'tap0', mac(M));
    guests.push(g);
    const p = (ok: (v: PortView) => boolean, what: string) =>
      until(`tap0: ${what}`, () => d.get('/api/v1/ports/tap0'), (r) => r.status === 200 && ok(r.json as PortView), scaled(10_000)).then((r) => r.json as PortView);
    await p((v) => v.bridge === '', 'watched');
    const own = guestAnnouncements(mac(M), '10.77.1.5', 'fe80::5054:ff:fe5e:4');
    g.send(own.garp, own.na);
    await p((v) => v.macs[0]?.framesBeforeForwarding === 2, '2 frames before forwarding');
    ns.ip('link', 'set', 'tap0', 'master', 'br0');
    await p((v) => v.verdict === 'late', 'late');
    await sleep(LAST_MS + 300);
    expect((await cap.stop()).packets).toEqual([]);
    const s = await d.metrics();
    expect(sampleValue(s, 'bridgewatch_announce_suppressed_total', { reason: 'dry_run' })).toBe(1);
    expect(sampleValue(s, 'bridgewatch_announcements_replayed_total', { bridge: 'br0', kind: 'garp' })).toBe(0);
    expect(sampleValue(s, 'bridgewatch_announcements_replayed_total', { bridge: 'br0', kind: 'na' })).toBe(0);
    await d.stop('SIGTERM', scaled(10_000));
  });
});

describe.skipIf(!!skip)('replay with the libpcap fallback (--capture pcap)', () => {
  it('keeps the lost gARP and NA in user space and replays them the same way', async () => {
    const ns = bridgeWithUplink('rplpcap');
    const d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir(), '--capture', 'pcap'], { readyMs: scaled(15_000) });
    const M = '52:54:00:5e:00:05';
    const cap = await startCapture(ns.name, 'up0p', join(dir, 'pcap.pcap'), ['ether', 'src', M], 'in');
    const g = new Guest(ns, 'tap0', mac(M));
    guests.push(g);
    const p = (ok: (v: PortView) => boolean, what: string) =>
      until(`tap0: ${what}`, () => d.get('/api/v1/ports/tap0'), (r) => r.status === 200 && ok(r.json as PortView), scaled(10_000)).then((r) => r.json as PortView);
    await p((v) => v.bridge === '', 'watched');
    const own = guestAnnouncements(mac(M), '10.77.2.5', 'fe80::5054:ff:fe5e:5');
    g.send(own.garp, own.na);
    await p((v) => v.macs[0]?.framesBeforeForwarding === 2, '2 frames before forwarding');
    ns.ip('link', 'set', 'tap0', 'master', 'br0');
    await until('the schedule done', async () => sampleValue(await d.metrics(), 'bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'late_attach' }), (v) => v === ROUNDS, scaled(LAST_MS + 3000));
    await sleep(300);
    expect(hexes((await cap.stop()).packets)).toEqual(Array.from({ length: ROUNDS }, () => [hex(rarpFrame(M)), hex(own.garp), hex(own.na)]).flat());
    const s = await d.metrics();
    expect(seriesOf(s, 'bridgewatch_build_info').map((x) => x.labels.mode)).toEqual(['pcap']);
    expect(sampleValue(s, 'bridgewatch_announcements_replayed_total', { bridge: 'br0', kind: 'garp' })).toBe(ROUNDS);
    expect(sampleValue(s, 'bridgewatch_announcements_replayed_total', { bridge: 'br0', kind: 'na' })).toBe(ROUNDS);
    await d.stop('SIGTERM', scaled(10_000));
  });
});
