// Devices that vanish under the daemon: 1,000 taps created, written to and deleted as fast as a
// process can, many gone before their RTM_NEWLINK is handled (attaches then fail with ENODEV).
// Afterwards nothing is left: no program, no kernel map entry, no port series, no tracked port.
import { afterAll, describe, expect, it } from 'vitest';
import type { PortView } from '../../src/tracker/types.js';
import { sampleValue, seriesOf } from '../helpers/daemon-metrics.js';
import { cliMissing, DaemonProcess, killAllDaemons, until } from '../helpers/daemon-process.js';
import { mac, qemuRarp } from '../helpers/frames.js';
import { execFileSync } from 'node:child_process';
import { Tap } from '../../src/sys/tun.js';
import { missing as kernelMissing } from '../helpers/kernel.js';
import { cleanupAll, TestNetns, tempStateDir } from '../helpers/netns.js';

const skip = cliMissing() || kernelMissing.bpf || kernelMissing.tun;
const TAPS = Number(process.env.BRIDGEWATCH_CHURN_TAPS ?? 1000);

afterAll(async () => {
  await killAllDaemons();
  cleanupAll();
});

describe.skipIf(!!skip)('create/delete churn', () => {
  it(`${TAPS} taps created, written to and deleted while the daemon runs leave nothing behind`, async () => {
    const ns = new TestNetns('churn');
    ns.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0');
    ns.ip('link', 'set', 'br0', 'up');
    const d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir()], { port: 9742 });
    // in batches: open 100 taps, one `ip -batch` brings them up (a third into br0), a frame into
    // each, then close them all (the last fd: the kernel deletes the tap)
    const BATCH = 100;
    for (let at = 0; at < TAPS; at += BATCH) {
      const n = Math.min(BATCH, TAPS - at);
      const taps = Array.from({ length: n }, (_, k) => ns.run(() => new Tap(`tapc${at + k}`)));
      const cmds = taps.map((t, k) => `link set ${t.name} up${(at + k) % 3 === 0 ? ' master br0' : ''}`).join('\n');
      execFileSync('ip', ['-n', ns.name, '-force', '-batch', '-'], { input: cmds + '\n' });
      taps.forEach((t, k) => {
        const i = at + k;
        t.write(qemuRarp(mac(`52:54:00:c0:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`)));
      });
      for (const t of taps) t.close();
    }
    const settled = await until(
      'the daemon forgets every tap',
      async () => ({ ports: (await d.get('/api/v1/ports')).json.ports as PortView[], metrics: await d.metrics() }),
      (x) => x.ports.every((p) => !p.name.startsWith('tapc')) && sampleValue(x.metrics, 'bridgewatch_bpf_programs_attached') === 0,
      120_000,
      200,
    );
    const s = settled.metrics;
    expect(seriesOf(s, 'bridgewatch_port_info').filter((x) => x.labels.port.startsWith('tapc'))).toEqual([]);
    expect(sampleValue(s, 'bridgewatch_bpf_map_entries', { map: 'bw_port_macs' })).toBe(0);
    expect(sampleValue(s, 'bridgewatch_guest_macs_tracked')).toBe(0);
    expect(sampleValue(s, 'bridgewatch_ports_watched', { bridge: 'br0' })).toBe(0);
    // the failures were the devices' disappearance, counted as such, and nothing else
    for (const reason of ['permission', 'unsupported', 'kernel']) expect(sampleValue(s, 'bridgewatch_attach_errors_total', { reason }), reason).toBe(0);
    expect(d.running).toBe(true);
    expect(await d.get('/readyz')).toMatchObject({ status: 200 });
  }, 300_000);
});
