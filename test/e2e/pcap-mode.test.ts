// The two fallbacks for hosts without the full eBPF path, end to end: `--capture pcap` (no eBPF)
// and `--bpf-port-state netlink` (eBPF on kernels before 6.3: port states from rtnetlink). The
// built daemon as a child process in a namespace of our own (ip netns exec), a real bridge and a
// tap held open through /dev/net/tun, a guest that announces before its tap joins; read back
// through /metrics and /api/v1 only.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../src/lab/qemu.js';
import type { PortView } from '../../src/tracker/types.js';
import { sampleValue, seriesOf } from '../helpers/daemon-metrics.js';
import { cliMissing, DaemonProcess, killAllDaemons, until } from '../helpers/daemon-process.js';
import { ipv4Frame, mac, qemuRarp } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { missing as kernelMissing } from '../helpers/kernel.js';
import { cleanupAll, TestNetns, tempStateDir } from '../helpers/netns.js';

const skip = cliMissing() || kernelMissing.tun || kernelMissing.bridge || (findExecutable('curl') ? '' : 'curl not in PATH (scripts/setup.sh installs it)');
const GUEST = '52:54:00:00:77:01';

/** Capturing packet sockets (ETH_P_ALL) in the namespace, as the kernel lists them. */
const captures = (ns: TestNetns): number =>
  execFileSync('ip', ['netns', 'exec', ns.name, 'cat', '/proc/net/packet'], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .slice(1)
    .filter((l) => l.trim().split(/\s+/)[3] === '0003').length;

let guest: Guest | undefined;
afterAll(async () => {
  await killAllDaemons();
  guest?.close();
  cleanupAll();
});

const MODES = [
  { name: '--capture pcap', args: ['--capture', 'pcap'], mode: 'pcap', port: 9731, log: 'capturing with libpcap', sockets: 1, needs: '' },
  // still eBPF: on a kernel without it the daemon would fall back to pcap, and this is not that test
  { name: '--bpf-port-state netlink', args: ['--bpf-port-state', 'netlink'], mode: 'ebpf', port: 9732, log: 'bpf loaded', sockets: 0, needs: kernelMissing.bpf ?? '' },
] as const;

for (const mode of MODES) describe.skipIf(!!(skip || mode.needs))(`bridgewatch run ${mode.name}`, () => {
  let ns: TestNetns;
  let d: DaemonProcess;

  beforeAll(async () => {
    ns = new TestNetns('fallback-e2e');
    execFileSync('ip', ['netns', 'exec', ns.name, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    ns.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    ns.ip('link', 'set', 'br0', 'up');
    d = await DaemonProcess.start(ns, [...mode.args, '--state-dir', tempStateDir()], { port: mode.port });
  }, 30_000);

  it('reports its mode in build_info and the log, and is ready', async () => {
    const m = await d.metrics();
    expect(seriesOf(m, 'bridgewatch_build_info').map((s) => [s.labels.mode, s.value])).toEqual([[mode.mode, 1]]);
    expect(sampleValue(m, 'bridgewatch_ready')).toBe(1);
    expect((await d.get('/readyz')).status).toBe(200);
    const line = d.logs().find((l) => String(l.msg).startsWith(mode.log));
    expect(line).toBeDefined();
    if (mode.mode === 'ebpf') expect(line).toMatchObject({ portState: 'netlink' });
  });

  it('judges a guest that announced before its tap joined the bridge late', async () => {
    // created down, then up, as libvirt does: the capture opens when the tap comes up
    guest = new Guest(ns, 'tap0', mac(GUEST));
    const g = guest;
    await until('tap0 watched with carrier', () => d.get('/api/v1/ports/tap0'), (r) => r.status === 200 && (r.json as PortView).carrier);
    expect(captures(ns)).toBe(mode.sockets);

    g.announce(2);
    g.send(ipv4Frame(mac(GUEST)));
    await until('the guest seen on tap0', () => d.get('/api/v1/ports/tap0'), (r) => (r.json as PortView).macs.some((m) => m.mac === GUEST && m.announcements === 2));
    ns.ip('link', 'set', 'tap0', 'master', 'br0');

    const ports = await until(
      'a late verdict in /api/v1/ports',
      () => d.get('/api/v1/ports'),
      (r) => (r.json as { ports: PortView[] }).ports.some((p) => p.name === 'tap0' && p.verdict === 'late'),
    );
    const p = (ports.json as { ports: PortView[] }).ports.find((x) => x.name === 'tap0')!;
    expect(p).toMatchObject({ bridge: 'br0', state: 'forwarding', verdict: 'late' });
    expect(p.macs).toEqual([expect.objectContaining({ mac: GUEST, verdict: 'late', announcements: 2, framesBeforeForwarding: 3 })]);
    expect(p.macs[0].attachDelaySeconds).toBeGreaterThan(0);

    // after the join the guest's frames are delivered: counted as such, not as lost
    g.send(qemuRarp(mac(GUEST)));
    const m = await until(
      'the delivered announcement in /metrics',
      () => d.metrics(),
      (s) => sampleValue(s, 'bridgewatch_announcements_total', { bridge: 'br0', kind: 'rarp', delivered: 'true' }) === 1,
    );
    expect(sampleValue(m, 'bridgewatch_late_attach_total', { bridge: 'br0' })).toBe(1);
    expect(sampleValue(m, 'bridgewatch_frames_before_forwarding_total', { bridge: 'br0', kind: 'rarp' })).toBe(2);
    expect(sampleValue(m, 'bridgewatch_frames_before_forwarding_total', { bridge: 'br0', kind: 'other' })).toBe(1);
    expect(sampleValue(m, 'bridgewatch_announcements_total', { bridge: 'br0', kind: 'rarp', delivered: 'false' })).toBe(2);
    expect(sampleValue(m, 'bridgewatch_bpf_programs_attached')).toBe(1);
  });

  it('closes its captures and exits 0 on SIGTERM', async () => {
    expect(captures(ns)).toBe(mode.sockets);
    const exit = await d.stop('SIGTERM');
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(captures(ns)).toBe(0);
  });
});
