// AF_PACKET sending, checked from the other end of a veth pair inside a namespace of our own.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rarpFrame, withVlanTag } from '../../src/announce/frames.js';
import { BridgewatchError } from '../../src/errors.js';
import { c } from '../../src/sys/libc.js';
import { addNetns, delNetns, inNetns, ip } from '../../src/sys/netns.js';
import { PacketSocket } from '../../src/sys/packet.js';
import { findExecutable } from '../../src/lab/qemu.js';
import { startCapture, stopAllCaptures, type Pcap } from '../fixtures/pcap.js';

const NS = `bwt-pkt-${process.pid}`;
const MAC = '52:54:00:12:34:56';
const missing = ['tcpdump', 'tshark'].filter((b) => !findExecutable(b));
const skipReason =
  process.getuid?.() !== 0 ? 'needs root (network namespaces, raw sockets)' : missing.length ? `${missing.join(' and ')} not found in PATH (scripts/setup.sh installs them)` : '';

let dir = '';
let sock: PacketSocket | null = null;
let ifindexA = 0;

/** tshark's own reading of the first frame of a capture file. */
function tshark(file: string): Record<string, string> {
  const fields = ['_ws.col.Protocol', '_ws.col.Info', 'eth.type', 'vlan.id', 'arp.opcode', 'arp.src.hw_mac', 'arp.src.proto_ipv4', 'arp.dst.hw_mac', 'arp.dst.proto_ipv4'];
  const out = execFileSync('tshark', ['-n', '-r', file, '-c', '1', '-T', 'fields', '-E', 'separator=/t', ...fields.flatMap((f) => ['-e', f])], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const vals = out.replace(/\n$/, '').split('\t');
  return Object.fromEntries(fields.map((f, i) => [f, vals[i] ?? '']));
}

const tcpdumpLines = (file: string): string[] =>
  execFileSync('tcpdump', ['-nn', '-e', '-r', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n');

/** Capture on vB while `fn` sends on vA. */
async function sendAndCapture(name: string, fn: () => void): Promise<{ pcap: Pcap; file: string }> {
  const file = join(dir, `${name}.pcap`);
  const cap = await startCapture(NS, 'vB', file, ['ether', 'src', MAC], 'in');
  fn();
  await sleep(200);
  return { pcap: await cap.stop(), file };
}

describe('PacketSocket (AF_PACKET sender)', () => {
  beforeAll(() => {
    if (skipReason) return;
    dir = mkdtempSync(join(tmpdir(), 'bwt-pkt-'));
    delNetns(NS);
    addNetns(NS);
    // no IPv6 autoconfiguration chatter on the links
    execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    ip(NS, 'link', 'add', 'vA', 'type', 'veth', 'peer', 'name', 'vB');
    ip(NS, 'link', 'set', 'vA', 'up');
    ip(NS, 'link', 'set', 'vB', 'up');
    // created inside the namespace, the socket stays there: it can only ever reach NS's devices
    inNetns(NS, () => {
      sock = new PacketSocket();
      ifindexA = c.if_nametoindex('vA') as number;
    });
  });

  afterAll(async () => {
    sock?.close();
    await stopAllCaptures();
    delNetns(NS);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('puts QEMU RARP on the wire unchanged, decoded as RARP by tshark and tcpdump', async (ctx) => {
    ctx.skip(!!skipReason, skipReason);
    const frame = rarpFrame(MAC);
    const { pcap, file } = await sendAndCapture('rarp', () => sock!.send(ifindexA, frame));
    expect(pcap.packets).toHaveLength(1);
    expect(pcap.packets[0].data.toString('hex')).toBe(frame.toString('hex'));
    expect(tshark(file)).toEqual({
      '_ws.col.Protocol': 'RARP',
      '_ws.col.Info': `Who is ${MAC}? Tell ${MAC}`, // tshark's wording for opcode 3
      'eth.type': '0x8035',
      'vlan.id': '',
      'arp.opcode': '3',
      'arp.src.hw_mac': MAC,
      'arp.src.proto_ipv4': '0.0.0.0',
      'arp.dst.hw_mac': MAC,
      'arp.dst.proto_ipv4': '0.0.0.0',
    });
    // tcpdump's wording, the one the issue quotes
    const [line] = tcpdumpLines(file);
    expect(line).toContain(`${MAC} > ff:ff:ff:ff:ff:ff, ethertype Reverse ARP (0x8035), length 60: Reverse Request who-is ${MAC} tell ${MAC}, length 46`);
  });

  it('a tagged frame leaves with its VLAN tag', async (ctx) => {
    ctx.skip(!!skipReason, skipReason);
    const frame = withVlanTag(rarpFrame(MAC), 100);
    const { pcap, file } = await sendAndCapture('tagged', () => sock!.send(ifindexA, frame));
    expect(pcap.packets).toHaveLength(1);
    expect(pcap.packets[0].data.toString('hex')).toBe(frame.toString('hex'));
    const t = tshark(file);
    expect(t['eth.type']).toBe('0x8100');
    expect(t['vlan.id']).toBe('100');
    expect(t['_ws.col.Protocol']).toBe('RARP');
    expect(t['arp.opcode']).toBe('3');
    expect(tcpdumpLines(file)[0]).toContain(`ethertype 802.1Q (0x8100), length 64: vlan 100, p 0, ethertype Reverse ARP (0x8035), Reverse Request who-is ${MAC} tell ${MAC}`);
  });

  it('several sends, several frames, in order', async (ctx) => {
    ctx.skip(!!skipReason, skipReason);
    const frames = [rarpFrame(MAC), withVlanTag(rarpFrame(MAC), 7), rarpFrame(MAC)];
    const { pcap } = await sendAndCapture('many', () => frames.forEach((f) => sock!.send(ifindexA, f)));
    expect(pcap.packets.map((p) => p.data.toString('hex'))).toEqual(frames.map((f) => f.toString('hex')));
  });

  it('is send-only: after all that traffic nothing is queued on it for reading', (ctx) => {
    ctx.skip(!!skipReason, skipReason);
    // /proc/net/packet columns: sk RefCnt Type Proto Iface R Rmem User Inode
    const rows = execFileSync('ip', ['netns', 'exec', NS, 'cat', '/proc/net/packet'], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/));
    const ours = rows.filter((r) => r[2] === '3' && r[3] === '0000');
    expect(ours).toHaveLength(1);
    expect(ours[0][5]).toBe('0'); // not running (bound to no protocol)
    expect(ours[0][6]).toBe('0'); // Rmem
  });

  it('names the interface and the cause when the kernel refuses', (ctx) => {
    ctx.skip(!!skipReason, skipReason);
    ip(NS, 'link', 'set', 'vA', 'down');
    try {
      expect(() => sock!.send(ifindexA, rarpFrame(MAC))).toThrow(/^send frame on vA: Network is down$/);
    } finally {
      ip(NS, 'link', 'set', 'vA', 'up');
    }
  });

  it('gives a clear ENODEV error for an ifindex that does not exist', (ctx) => {
    ctx.skip(!!skipReason, skipReason);
    let err: unknown;
    try {
      sock!.send(99_999, rarpFrame(MAC));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BridgewatchError);
    expect((err as BridgewatchError).message).toBe('send frame on ifindex 99999: No such device or address');
    expect((err as BridgewatchError).code).toBe('ENODEV');
    expect((err as BridgewatchError).errno).toBe(6);
  });

  it('refuses a runt buffer and a closed socket without a syscall', (ctx) => {
    ctx.skip(!!skipReason, skipReason);
    expect(() => sock!.send(ifindexA, Buffer.alloc(10))).toThrow('send frame on ifindex ' + ifindexA + ': 10 bytes is shorter than an Ethernet header');
    const s = inNetns(NS, () => new PacketSocket());
    s.close();
    s.close(); // idempotent
    expect(() => s.send(ifindexA, rarpFrame(MAC))).toThrow(/packet socket is closed/);
  });
});
