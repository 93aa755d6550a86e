// The identity sources against the real things: libvirt's status directory as a real directory
// followed by inotify (files written the way libvirt writes them: <name>.xml.new, then rename),
// /proc with processes argued like KubeVirt's virt-launcher in real network namespaces, an
// operator's file, and the resolver's precedence over all three. Nothing is stubbed: errors
// come from real bad files, a real dangling link, a real unreadable entry.
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileSource } from '../../src/identity/file.js';
import { KubevirtSource } from '../../src/identity/kubevirt.js';
import { LIBVIRT_MAX_BYTES, LibvirtSource } from '../../src/identity/libvirt.js';
import { IdentityResolver } from '../../src/identity/resolver.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { FakeLauncher, stopAllLaunchers } from '../helpers/fake-launcher.js';
import { cleanupAll, TestNetns } from '../helpers/netns.js';

const root = process.getuid?.() === 0;
const NOVA = readFileSync(join(PACKAGE_ROOT, 'test/fixtures/libvirt/nova.xml'), 'utf8');
const PLAIN = readFileSync(join(PACKAGE_ROOT, 'test/fixtures/libvirt/plain.xml'), 'utf8');

/** A logger whose JSON lines the test reads, and an error counter: what a source is given. */
function deps() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) });
  const d = { log: pino({ level: 'debug' }, stream), errors: 0, lines, error: () => void d.errors++ };
  return d;
}
const warnings = (lines: Record<string, unknown>[]) => lines.filter((l) => l.level === 40);

async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`wait for ${what}: timed out after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let work = '';
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'bwt-identity-'));
});
afterEach(async () => {
  await stopAllLaunchers();
  rmSync(work, { recursive: true, force: true });
});
afterAll(() => cleanupAll());

/** libvirt's way: the whole file under <name>.xml.new, then renamed over <name>.xml */
function libvirtWrite(dir: string, name: string, xml: string): void {
  writeFileSync(join(dir, `${name}.xml.new`), xml);
  renameSync(join(dir, `${name}.xml.new`), join(dir, `${name}.xml`));
}
const novaAs = (dev: string, vm = 'web-7') => NOVA.replace("dev='tap5e1f2b3c-4d'", `dev='${dev}'`).replace('<nova:name>web-7<', `<nova:name>${vm}<`);

describe('LibvirtSource: a real status directory, followed by inotify', () => {
  it('reads what is there at start, follows creation, change and removal without a rescan', async () => {
    const dir = join(work, 'qemu');
    mkdirSync(dir);
    libvirtWrite(dir, 'debian12', PLAIN);
    writeFileSync(join(dir, 'debian12.pid'), '48211'); // libvirt's other files there are not domains
    const d = deps();
    const src = new LibvirtSource(dir, d);
    await src.rescan();
    expect(src.on).toBe(true);
    expect(src.byPort('vnet1')).toMatchObject({ name: 'debian12', uuid: '8f2b6c1e-3a44-4d0b-9d6e-2f6a5b7c9e10', source: 'libvirt', mac: '52:54:00:aa:bb:01' });
    expect(src.byMac('52:54:00:aa:bb:02')).toMatchObject({ name: 'debian12' }); // the VF: by MAC only
    try {
      libvirtWrite(dir, 'instance-0000002a', novaAs('tap9'));
      await until('the new domain', () => src.byPort('tap9')?.name === 'web-7');
      expect(src.byPort('tap9')).toMatchObject({ namespace: 'shop', domain: 'instance-0000002a', project: { name: 'shop' } });
      libvirtWrite(dir, 'instance-0000002a', novaAs('tap9', 'web-7-renamed'));
      await until('the change', () => src.byPort('tap9')?.name === 'web-7-renamed');
      // rewritten in place (not libvirt's way) works as well
      writeFileSync(join(dir, 'instance-0000002a.xml'), novaAs('tap10'));
      await until('the in-place rewrite', () => src.byPort('tap10') !== undefined && src.byPort('tap9') === undefined);
      rmSync(join(dir, 'instance-0000002a.xml'));
      await until('the removal', () => src.byPort('tap10') === undefined);
      expect(src.domains).toBe(1);
      expect(d.errors).toBe(0); // a domain that stops is not an error
    } finally {
      src.stop();
    }
  });

  it('counts a bad file once per version, warns once, and takes it back when it is fixed', async () => {
    const dir = join(work, 'qemu');
    mkdirSync(dir);
    const d = deps();
    const src = new LibvirtSource(dir, d);
    await src.rescan();
    try {
      libvirtWrite(dir, 'broken', PLAIN.slice(0, PLAIN.indexOf('</domain>'))); // cut short
      await until('the bad file counted', () => d.errors === 1);
      for (let i = 0; i < 3; i++) await src.rescan(); // unchanged: not read again
      expect(d.errors).toBe(1);
      expect(warnings(d.lines)).toHaveLength(1);
      expect(warnings(d.lines)[0]).toMatchObject({ file: join(dir, 'broken.xml'), msg: 'identity: libvirt status file not used' });
      expect(String(warnings(d.lines)[0].err)).toMatch(/unclosed element/);
      libvirtWrite(dir, 'broken', PLAIN);
      await until('the fixed file read', () => src.byPort('vnet0') !== undefined);
      libvirtWrite(dir, 'broken', '<domstatus><oops/></domstatus>');
      await until('the new breakage counted', () => d.errors === 2);
      expect(src.byPort('vnet0')).toBeUndefined(); // the file is the truth: a bad one names nobody
      expect(warnings(d.lines)).toHaveLength(2);
    } finally {
      src.stop();
    }
  });

  it('refuses a file over 1 MiB without parsing it, and counts a file that vanished between listing and reading', async () => {
    const dir = join(work, 'qemu');
    mkdirSync(dir);
    // a valid status file, padded with a comment past the limit: valid XML, still refused
    writeFileSync(join(dir, 'huge.xml'), PLAIN.replace('<domstatus', `<!-- ${'x'.repeat(LIBVIRT_MAX_BYTES)} -->\n<domstatus`));
    symlinkSync(join(dir, 'gone-already'), join(dir, 'ghost.xml')); // listed by readdir, nothing to read
    const d = deps();
    const src = new LibvirtSource(dir, d);
    try {
      await src.rescan();
      expect(src.byPort('vnet0')).toBeUndefined();
      expect(d.errors).toBe(2);
      expect(warnings(d.lines).map((l) => String(l.err))).toEqual([expect.stringMatching(/huge\.xml: \d+ bytes, more than the 1048576 accepted/)]);
    } finally {
      src.stop();
    }
  });

  it('is off while the directory is absent, on once it appears, off again when it goes', async () => {
    const dir = join(work, 'qemu');
    const d = deps();
    const src = new LibvirtSource(dir, d);
    try {
      await src.rescan();
      expect(src.on).toBe(false);
      expect(d.errors).toBe(0); // no libvirt on this host: nothing wrong
      mkdirSync(dir);
      libvirtWrite(dir, 'debian12', PLAIN);
      await src.rescan();
      expect(src.on).toBe(true);
      expect(src.byPort('vnet0')?.name).toBe('debian12');
      expect(d.lines.map((l) => l.msg)).toContain('identity: libvirt status directory appeared');
      rmSync(dir, { recursive: true });
      await src.rescan();
      expect([src.on, src.byPort('vnet0')]).toEqual([false, undefined]);
    } finally {
      src.stop();
    }
  });
});

const netnsInode = (ns: TestNetns) => statSync(`/run/netns/${ns.name}`).ino;
const ownNetns = () => Number(/\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/net'))![1]);

describe.skipIf(!root)('KubevirtSource: virt-launcher processes in /proc (needs root: network namespaces)', () => {
  it('finds a launcher in a namespace and names that namespace after its VMI; forgets it when it exits', async () => {
    const ns = new TestNetns('kv');
    const l = await FakeLauncher.start({ name: 'vmi-web7', uid: '1234', namespace: 'shop', ns });
    // what the kernel shows is what KubeVirt's launcher shows
    expect(l.cmdline().split('\0')).toEqual(expect.arrayContaining(['virt-launcher-monitor', '--name', 'vmi-web7', '--uid', '1234', '--namespace', 'shop']));
    const d = deps();
    const src = new KubevirtSource(d);
    await src.scan(true);
    expect(src.launchers()).toEqual([{ name: 'vmi-web7', uid: '1234', namespace: 'shop', pid: l.pid, netns: netnsInode(ns) }]);
    expect(src.byNetns(netnsInode(ns))).toEqual({ name: 'vmi-web7', uuid: '1234', namespace: 'shop', source: 'kubevirt' });
    expect(src.on).toBe(true);
    expect(d.lines.map((l) => l.msg)).toContain('identity: KubeVirt virt-launcher found');
    await l.stop();
    await src.scan();
    expect([src.launchers(), src.byNetns(netnsInode(ns)), d.errors]).toEqual([[], undefined, 0]);
    ns.delete();
  });

  it('one VMI per namespace: the monitor and its launcher are one; two VMIs, or the host namespace, map to none', async () => {
    const a = new TestNetns('kv');
    const b = new TestNetns('kv');
    await FakeLauncher.start({ name: 'vmi-a', uid: 'uid-a', namespace: 'shop', ns: a });
    await FakeLauncher.start({ name: 'vmi-a', uid: 'uid-a', namespace: 'shop', ns: a, exe: 'virt-launcher' });
    await FakeLauncher.start({ name: 'vmi-b', uid: 'uid-b', namespace: 'shop', ns: b });
    await FakeLauncher.start({ name: 'vmi-c', uid: 'uid-c', namespace: 'shop', ns: b });
    await FakeLauncher.start({ name: 'vmi-host', uid: 'uid-h', namespace: 'x' }); // in our (the host's) namespace
    const src = new KubevirtSource(deps());
    await src.scan(true);
    expect(src.launchers().map((l) => l.name).sort()).toEqual(['vmi-a', 'vmi-a', 'vmi-b', 'vmi-c', 'vmi-host']);
    expect(src.byNetns(netnsInode(a))?.name).toBe('vmi-a');
    expect(src.byNetns(netnsInode(b))).toBeUndefined();
    expect(src.byNetns(ownNetns())).toBeUndefined();
    a.delete();
    b.delete();
  });

  it('reads only new and young processes between full passes, and still sees a launcher that appears later', async () => {
    let now = 1_000_000;
    const src = new KubevirtSource(deps(), '/proc', () => now);
    await src.scan(true);
    now += 120_000; // everything seen so far is old now
    const l = await FakeLauncher.start({ name: 'late', uid: 'u-late', namespace: 'n' });
    await src.scan();
    expect(src.launchers().map((x) => x.pid)).toEqual([l.pid]);
  });

  it('counts an entry it cannot read once, and keeps scanning', async () => {
    // a /proc look-alike with one process whose cmdline cannot be read (a directory: EISDIR)
    const proc = join(work, 'proc');
    mkdirSync(join(proc, '4242', 'cmdline'), { recursive: true });
    mkdirSync(join(proc, '4243'));
    writeFileSync(join(proc, '4243', 'cmdline'), 'virt-launcher\0--name\0v\0--uid\0u\0');
    mkdirSync(join(proc, '4243', 'ns'));
    symlinkSync('net:[4026532000]', join(proc, '4243', 'ns', 'net'));
    const d = deps();
    const src = new KubevirtSource(d, proc);
    for (let i = 0; i < 3; i++) await src.scan(true);
    expect(d.errors).toBe(1);
    expect(warnings(d.lines)).toHaveLength(1);
    expect(src.byNetns(4026532000)).toEqual({ name: 'v', uuid: 'u', namespace: '', source: 'kubevirt' });
  });
});

describe('FileSource and the resolver: precedence over every source', () => {
  it('re-reads the file when it changes, keeps the last valid mapping when it goes bad (counted)', async () => {
    const path = join(work, 'identity.json');
    writeFileSync(path, JSON.stringify([{ port: 'tap3', vm: 'web-7', vm_namespace: 'shop' }]));
    const d = deps();
    const src = new FileSource(path, d);
    await src.start();
    try {
      expect(src.byPort('tap3')?.name).toBe('web-7');
      writeFileSync(path, JSON.stringify([{ port: 'tap3', vm: 'web-8' }]));
      await until('the change', () => src.byPort('tap3')?.name === 'web-8');
      writeFileSync(path, '[{"port": "tap3"}]');
      await until('the bad version counted', () => d.errors === 1);
      await src.refresh();
      expect([src.byPort('tap3')?.name, d.errors, warnings(d.lines).length]).toEqual(['web-8', 1, 1]);
      expect(String(warnings(d.lines)[0].err)).toMatch(/entry 0: vm is required/);
    } finally {
      src.stop();
    }
  });

  it('refuses to start on a bad file, naming it and the entry', async () => {
    const path = join(work, 'identity.json');
    writeFileSync(path, '[{"mac": "nope", "vm": "a"}]');
    await expect(new FileSource(path, deps()).start()).rejects.toThrow(/config identity-file: .*identity\.json: entry 0: mac "nope" is not a MAC address/);
    await expect(new FileSource(join(work, 'missing.json'), deps()).start()).rejects.toThrow(/config identity-file: .*missing\.json: no longer there/);
  });

  it('the file wins, then libvirt; a port name before a MAC; unknown is undefined', async () => {
    const dir = join(work, 'qemu');
    mkdirSync(dir);
    libvirtWrite(dir, 'debian12', PLAIN);
    const file = join(work, 'identity.json');
    writeFileSync(file, JSON.stringify([{ port: 'vnet1', vm: 'override' }, { mac: '52:54:00:36:bd:3b', vm: 'by-mac' }, { port: 'tap-x', vm: 'x' }]));
    const r = new IdentityResolver({ cfg: { libvirtDir: dir, kubevirt: 'off', identityFile: file, identityIntervalMs: 60_000 }, log: deps().log });
    await r.start();
    try {
      expect(r.sources()).toEqual(['libvirt', 'file']);
      expect(r.of('vnet1')).toMatchObject({ name: 'override', source: 'file' });
      expect(r.of('vnet0')).toMatchObject({ name: 'debian12', source: 'libvirt' }); // libvirt's port name beats the file's MAC
      expect(r.of('tap-y', ['52:54:00:36:bd:3b'])).toMatchObject({ name: 'by-mac', source: 'file' });
      expect(r.of('tap-y', ['52:54:00:00:00:99', '52:54:00:aa:bb:02'])).toMatchObject({ name: 'debian12', source: 'libvirt' });
      expect(r.of('tap-y', ['52:54:00:00:00:99'])).toBeUndefined();
      expect(r.errors()).toEqual({ libvirt: 0, kubevirt: 0, file: 0 });
    } finally {
      r.stop();
    }
  });
});
