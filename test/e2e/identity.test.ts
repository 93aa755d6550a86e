// Which VM, end to end: the built daemon (`bridgewatch run`) in a namespace of our own, with a
// libvirt status directory that the test writes the way libvirt does (<name>.xml.new, renamed),
// an --identity-file, and processes argued like KubeVirt's virt-launcher in the daemon's
// namespace. Real taps (held open, as by QEMU) on a real bridge; only the daemon's public
// surfaces are read: /metrics (bridgewatch_guest_info, identity_errors_total), /api/v1/ports,
// `bridgewatch status`, its log and its exit status.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIBVIRT_MAX_BYTES } from '../../src/identity/libvirt.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import type { PortView } from '../../src/tracker/types.js';
import { sampleValue, seriesOf } from '../helpers/daemon-metrics.js';
import { cli, cliMissing, DaemonProcess, killAllDaemons, until } from '../helpers/daemon-process.js';
import { FakeLauncher, stopAllLaunchers } from '../helpers/fake-launcher.js';
import { ipv4Frame, mac } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { missing as kernelMissing } from '../helpers/kernel.js';
import { cleanupAll, TestNetns, tempStateDir } from '../helpers/netns.js';

const skip = cliMissing() || kernelMissing.bpf || kernelMissing.tun || kernelMissing.bridge || kernelMissing.bridgeBtf;
const NOVA = readFileSync(join(PACKAGE_ROOT, 'test/fixtures/libvirt/nova.xml'), 'utf8');
const PLAIN = readFileSync(join(PACKAGE_ROOT, 'test/fixtures/libvirt/plain.xml'), 'utf8');
const NOVA_UUID = '3c1f8e2a-6b7d-4e0f-9a1b-2c3d4e5f6a7b';

const guests = new Set<Guest>();
let work = '';

function netns(tag: string): TestNetns {
  const ns = new TestNetns(tag);
  execFileSync('ip', ['netns', 'exec', ns.name, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  ns.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
  ns.ip('link', 'set', 'br0', 'up');
  return ns;
}
function plug(ns: TestNetns, tap: string, m = '52:54:00:00:00:01', bridge = 'br0'): Guest {
  const g = new Guest(ns, tap, mac(m));
  guests.add(g);
  ns.ip('link', 'set', tap, 'master', bridge);
  return g;
}
function unplug(g: Guest): void {
  g.close(); // the last fd: the tap is deleted
  guests.delete(g);
}
/** libvirt's way: the whole file under <name>.xml.new, then renamed over <name>.xml */
function libvirtWrite(dir: string, name: string, xml: string): void {
  writeFileSync(join(dir, `${name}.xml.new`), xml);
  renameSync(join(dir, `${name}.xml.new`), join(dir, `${name}.xml`));
}
const novaOn = (dev: string, vm = 'web-7') => NOVA.replace("dev='tap5e1f2b3c-4d'", `dev='${dev}'`).replace('<nova:name>web-7<', `<nova:name>${vm}<`);

const guestInfo = async (d: DaemonProcess): Promise<Record<string, string | number>[]> =>
  seriesOf(await d.metrics(), 'bridgewatch_guest_info').map((s) => ({ ...s.labels, value: s.value }));
const infoOf = async (d: DaemonProcess, port: string) => (await guestInfo(d)).filter((s) => s.port === port);
const waitInfo = (d: DaemonProcess, port: string, ok: (s: Record<string, unknown>[]) => boolean, what: string, ms = 5000) =>
  until(`guest_info of ${port}: ${what}`, () => infoOf(d, port), ok, ms);
const apiVm = async (d: DaemonProcess, port: string) => ((await d.get(`/api/v1/ports/${port}`)).json as PortView).vm;
const errorsOf = async (d: DaemonProcess, source: string) => sampleValue(await d.metrics(), 'bridgewatch_identity_errors_total', { source });

beforeAll(() => {
  if (!skip) work = mkdtempSync(join(tmpdir(), 'bwt-e2e-identity-'));
});
afterAll(async () => {
  await killAllDaemons();
  await stopAllLaunchers();
  for (const g of guests) g.close();
  guests.clear();
  cleanupAll();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!!skip)('bridgewatch run names guest ports after their VM: libvirt status files and an identity file', () => {
  let ns: TestNetns;
  let d: DaemonProcess;
  let qemu = '';
  let idFile = '';

  beforeAll(async () => {
    ns = netns('ident');
    qemu = join(work, 'libvirt-qemu');
    mkdirSync(qemu);
    libvirtWrite(qemu, 'debian12', PLAIN); // a domain running before bridgewatch starts
    idFile = join(work, 'identity.json');
    writeFileSync(idFile, JSON.stringify([{ port: 'tap-file', vm: 'legacy-1', vm_uuid: 'u-legacy', vm_namespace: 'ops' }]));
    d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir(), '--libvirt-dir', qemu, '--identity-file', idFile, '--identity-interval', '1s']);
  }, 30_000);

  it('says in one line at start which sources are on', () => {
    const line = d.logs().find((l) => String(l.msg).startsWith('identity sources:'));
    expect(line).toMatchObject({ level: 30, libvirt: `on (${qemu}, 1 domains)`, file: `on (${idFile}, 1 VMs)`, rescanMs: 1000 });
    expect(String(line!.msg)).toMatch(/^identity sources: libvirt, (kubevirt, )?file$/);
  });

  it('a migrated Nova guest: its port appears first, libvirt writes the status file, guest_info and the API name the VM', async () => {
    const g = plug(ns, 'vnet7', 'fa:16:3e:5c:21:7a');
    await until('vnet7 watched', () => d.get('/api/v1/ports/vnet7'), (r) => r.status === 200);
    expect(await infoOf(d, 'vnet7')).toEqual([]);
    expect(await apiVm(d, 'vnet7')).toBeNull();

    libvirtWrite(qemu, 'instance-0000002a', novaOn('vnet7'));
    const [s] = await waitInfo(d, 'vnet7', (x) => x.length === 1, 'named');
    expect(s).toEqual({ port: 'vnet7', mac: 'fa:16:3e:5c:21:7a', vm: 'web-7', vm_uuid: NOVA_UUID, vm_namespace: 'shop', source: 'libvirt', value: 1 });
    expect(await apiVm(d, 'vnet7')).toEqual({
      name: 'web-7',
      uuid: NOVA_UUID,
      namespace: 'shop',
      source: 'libvirt',
      domain: 'instance-0000002a',
      project: { uuid: '9f8e7d6c5b4a39281706f5e4d3c2b1a0', name: 'shop' },
    });
    const status = await cli(ns, ['status', '--url', d.url]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout.split('\n').find((l) => l.startsWith('vnet7 '))?.split(/\s{2,}/).slice(0, 3)).toEqual(['vnet7', 'shop/web-7', 'br0']);

    // renamed in Nova, rewritten by libvirt: one series, the new name
    libvirtWrite(qemu, 'instance-0000002a', novaOn('vnet7', 'web-7b'));
    await waitInfo(d, 'vnet7', (x) => x.length === 1 && x[0].vm === 'web-7b', 'renamed');
    // the domain stops: its file goes, and so does the name (not an error)
    rmSync(join(qemu, 'instance-0000002a.xml'));
    await waitInfo(d, 'vnet7', (x) => x.length === 0, 'gone with the file');
    expect(await apiVm(d, 'vnet7')).toBeNull();
    unplug(g);
    expect(await errorsOf(d, 'libvirt')).toBe(0);
  });

  it('a plain libvirt domain: by its port name, and an SR-IOV-like interface by the MAC its guest sends from; gone with the port', async () => {
    const vnet0 = plug(ns, 'vnet0', '52:54:00:36:bd:3b');
    const [s] = await waitInfo(d, 'vnet0', (x) => x.length === 1, 'named by port');
    expect(s).toMatchObject({ vm: 'debian12', vm_uuid: '8f2b6c1e-3a44-4d0b-9d6e-2f6a5b7c9e10', vm_namespace: '', source: 'libvirt', mac: '52:54:00:36:bd:3b' });
    expect(await apiVm(d, 'vnet0')).toEqual({ name: 'debian12', uuid: '8f2b6c1e-3a44-4d0b-9d6e-2f6a5b7c9e10', namespace: '', source: 'libvirt', domain: 'debian12' });

    // a port libvirt does not name; its guest's MAC is the domain's third interface
    const vf = plug(ns, 'tap-vf', '52:54:00:aa:bb:02');
    await until('tap-vf watched', () => d.get('/api/v1/ports/tap-vf'), (r) => r.status === 200);
    expect(await infoOf(d, 'tap-vf')).toEqual([]);
    vf.send(ipv4Frame(vf.mac));
    const [byMac] = await waitInfo(d, 'tap-vf', (x) => x.length === 1, 'named by MAC');
    expect(byMac).toMatchObject({ vm: 'debian12', mac: '52:54:00:aa:bb:02', source: 'libvirt' });

    // the series goes with the port, although the domain's file stays
    unplug(vnet0);
    unplug(vf);
    await until('both series gone', () => guestInfo(d), (all) => !all.some((x) => x.port === 'vnet0' || x.port === 'tap-vf'));
  });

  it('bad and huge status files are counted once each, logged once each, and never stop the daemon', async () => {
    const before = (await errorsOf(d, 'libvirt'))!;
    libvirtWrite(qemu, 'broken', PLAIN.slice(0, PLAIN.indexOf('</domain>')));
    writeFileSync(join(qemu, 'huge.xml'), PLAIN.replace('<domstatus', `<!-- ${'x'.repeat(LIBVIRT_MAX_BYTES)} -->\n<domstatus`));
    await until('both counted', () => errorsOf(d, 'libvirt'), (n) => n === before + 2);
    await sleep(2500); // two rescans at --identity-interval 1s: unchanged files are not read again
    expect(await errorsOf(d, 'libvirt')).toBe(before + 2);
    const warned = d.logs().filter((l) => l.msg === 'identity: libvirt status file not used');
    expect(warned.map((l) => l.file).sort()).toEqual([join(qemu, 'broken.xml'), join(qemu, 'huge.xml')]);
    expect(String(warned.find((l) => l.file === join(qemu, 'huge.xml'))!.err)).toMatch(/more than the 1048576 accepted/);
    expect((await d.get('/readyz')).status).toBe(200);
    // the good domain beside them is still known
    const again = plug(ns, 'vnet1', '52:54:00:aa:bb:01');
    await waitInfo(d, 'vnet1', (x) => x.length === 1 && x[0].vm === 'debian12', 'still named');
    unplug(again);
  });

  it('the identity file names what libvirt does not, follows edits, and keeps its last valid mapping through a bad one', async () => {
    const g = plug(ns, 'tap-file');
    const [s] = await waitInfo(d, 'tap-file', (x) => x.length === 1, 'named by the file');
    expect(s).toMatchObject({ vm: 'legacy-1', vm_uuid: 'u-legacy', vm_namespace: 'ops', source: 'file' });
    writeFileSync(idFile, JSON.stringify([{ port: 'tap-file', vm: 'legacy-2', vm_namespace: 'ops' }]));
    await waitInfo(d, 'tap-file', (x) => x.length === 1 && x[0].vm === 'legacy-2', 'the edit');
    expect(await errorsOf(d, 'file')).toBe(0);
    writeFileSync(idFile, '[{"port": "tap-file", "vm": "legacy-3", "vm_name": "typo"}]');
    await until('the bad edit counted', () => errorsOf(d, 'file'), (n) => n === 1);
    expect((await infoOf(d, 'tap-file'))[0]).toMatchObject({ vm: 'legacy-2' });
    expect(d.logs().filter((l) => l.msg === 'identity: identity file not re-read; the last valid mapping stays').map((l) => l.err)).toEqual([
      'identity.json: entry 0: unknown key "vm_name" (allowed: port, mac, vm, vm_uuid, vm_namespace)',
    ]);
    unplug(g);
    await waitInfo(d, 'tap-file', (x) => x.length === 0, 'gone with the port');
  });

  it('stops cleanly', async () => {
    expect(await d.stop()).toMatchObject({ code: 0 });
  });

  it('refuses to start on a bad --identity-file: exit 2, naming the file and the entry', async () => {
    const bad = join(work, 'bad-identity.json');
    writeFileSync(bad, JSON.stringify([{ port: 'tap0', vm: 'a' }, { mac: '52:54:00', vm: 'b' }]));
    const r = await cli(ns, ['run', '--listen', '127.0.0.1:9799', '--state-dir', tempStateDir(), '--identity-file', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`bridgewatch: config identity-file: ${bad}: entry 1: mac "52:54:00" is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  });
});

describe.skipIf(!!skip)('bridgewatch run names guest ports after the KubeVirt VMI whose virt-launcher shares their namespace', () => {
  it('finds the launcher, names the namespace\'s guest ports, and lets go when it exits or the port goes', async () => {
    const ns = netns('kubevirt');
    const launcher = await FakeLauncher.start({ name: 'vmi-web7', uid: '1234', namespace: 'shop', ns });
    // as the kernel shows it: argv[0] and the flags KubeVirt's launcher has
    expect(launcher.cmdline().split('\0')).toEqual(expect.arrayContaining(['virt-launcher-monitor', '--name', 'vmi-web7', '--uid', '1234', '--namespace', 'shop']));
    const d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir(), '--libvirt-dir', 'off', '--identity-interval', '1s']);
    expect(d.logs().find((l) => String(l.msg).startsWith('identity sources:'))).toMatchObject({
      msg: 'identity sources: kubevirt',
      libvirt: 'off (--libvirt-dir off)',
      kubevirt: expect.stringMatching(/^on \(\d+ virt-launcher processes\)$/),
    });
    const tap = plug(ns, 'tap0');
    const [s] = await waitInfo(d, 'tap0', (x) => x.length === 1, 'named after the VMI');
    expect(s).toEqual({ port: 'tap0', mac: '', vm: 'vmi-web7', vm_uuid: '1234', vm_namespace: 'shop', source: 'kubevirt', value: 1 });
    expect(await apiVm(d, 'tap0')).toEqual({ name: 'vmi-web7', uuid: '1234', namespace: 'shop', source: 'kubevirt' });

    // the VMI's pod goes: within a rescan or two the port is nobody's
    await launcher.stop();
    await waitInfo(d, 'tap0', (x) => x.length === 0, 'the launcher gone', 5000);
    // a new launcher (a new pid) is found by a later rescan
    await FakeLauncher.start({ name: 'vmi-web8', uid: '5678', namespace: 'shop', ns });
    await waitInfo(d, 'tap0', (x) => x.length === 1 && x[0].vm === 'vmi-web8', 'the new VMI', 5000);
    unplug(tap);
    await waitInfo(d, 'tap0', (x) => x.length === 0, 'gone with the port');
    expect(await errorsOf(d, 'kubevirt')).toBe(0);
    await d.stop();
    await stopAllLaunchers();
    ns.delete();
  }, 30_000);

  it('without CAP_SYS_PTRACE a non-root launcher\'s namespace cannot be read: counted once, logged once, nothing named', async () => {
    const ns = netns('kvnoptrace');
    await FakeLauncher.start({ name: 'vmi-nonroot', uid: '4321', namespace: 'shop', ns, user: 65534 });
    // root, but without CAP_SYS_PTRACE, as the shipped manifests run it
    const d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir(), '--libvirt-dir', 'off', '--identity-interval', '1s'], {
      prefix: ['setpriv', '--inh-caps=-sys_ptrace', '--bounding-set=-sys_ptrace', '--'],
    });
    const tap = plug(ns, 'tap0');
    await until('tap0 watched', () => d.get('/api/v1/ports/tap0'), (r) => r.status === 200);
    await sleep(2500); // rescans: the launcher is looked at again, the failure is not counted again
    expect(await errorsOf(d, 'kubevirt')).toBe(1);
    expect(await infoOf(d, 'tap0')).toEqual([]);
    const warned = d.logs().filter((l) => l.level === 40 && String(l.msg).includes("cannot read a process's ns/net"));
    expect(warned).toHaveLength(1);
    expect(String(warned[0].err)).toMatch(/EACCES|permission denied/i);
    unplug(tap);
    await d.stop();
    await stopAllLaunchers();
    ns.delete();
  }, 30_000);
});
