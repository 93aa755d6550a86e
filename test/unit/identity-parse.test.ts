// The two small parsers behind KubeVirt and the identity file: a launcher's cmdline
// (src/identity/kubevirt-cmdline.ts) and the operator's JSON mapping (src/identity/file.ts).
import { describe, expect, it } from 'vitest';
import { parseIdentityFile } from '../../src/identity/file.js';
import { nsInode, parseLauncherCmdline } from '../../src/identity/kubevirt-cmdline.js';

const argv = (...a: string[]) => Buffer.from(a.join('\0') + '\0');
/** the compute container's command as virt-controller renders it (KubeVirt 1.x) */
const MONITOR = [
  '/usr/bin/virt-launcher-monitor', '--qemu-timeout', '275s', '--name', 'web-7', '--uid', '3cbb32a1-f11c-4065-99e6-62ce670bff12',
  '--namespace', 'shop', '--kubevirt-share-dir', '/var/run/kubevirt', '--ephemeral-disk-dir', '/var/run/kubevirt-ephemeral-disks',
  '--container-disk-dir', '/var/run/kubevirt/container-disks', '--grace-period-seconds', '45', '--hook-sidecars', '0',
  '--ovmf-path', '/usr/share/OVMF', '--run-as-nonroot',
];
const WEB7 = { name: 'web-7', uid: '3cbb32a1-f11c-4065-99e6-62ce670bff12', namespace: 'shop' };

describe('parseLauncherCmdline', () => {
  it.each([
    ['virt-launcher-monitor as virt-controller starts it', argv(...MONITOR), WEB7],
    ['the virt-launcher it starts', argv('/usr/bin/virt-launcher', ...MONITOR.slice(1)), WEB7],
    ['argv[0] without a path', argv('virt-launcher-monitor', '--name', 'a', '--uid', 'u'), { name: 'a', uid: 'u', namespace: '' }],
    ['--flag=value (pflag)', argv('virt-launcher', '--uid=u', '--name=a', '--namespace=n'), { name: 'a', uid: 'u', namespace: 'n' }],
    ['a single dash (Go flag)', argv('virt-launcher', '-name', 'a', '-uid', 'u'), { name: 'a', uid: 'u', namespace: '' }],
    ['the first of a repeated flag', argv('virt-launcher', '--name', 'a', '--uid', 'u', '--name', 'b'), { name: 'a', uid: 'u', namespace: '' }],
    ['a cmdline without its trailing NUL', Buffer.from('virt-launcher\0--name\0a\0--uid\0u'), { name: 'a', uid: 'u', namespace: '' }],
  ])('reads %s', (_what, raw, want) => {
    expect(parseLauncherCmdline(raw)).toEqual(want);
  });

  it.each([
    ['another program with the same flags', argv('/usr/bin/sleep', '--name', 'a', '--uid', 'u')],
    ['a look-alike name', argv('/usr/bin/virt-launcher-monitorx', '--name', 'a', '--uid', 'u')],
    ['a launcher without --uid', argv('virt-launcher', '--name', 'a', '--namespace', 'n')],
    ['a launcher without --name', argv('virt-launcher', '--uid', 'u')],
    ['a flag with no value at the end', argv('virt-launcher', '--uid', 'u', '--name')],
    ['a kernel thread (empty cmdline)', Buffer.alloc(0)],
    ['a shell whose argument mentions the launcher', argv('bash', '-c', 'virt-launcher --name a --uid u')],
  ])('is not fooled by %s', (_what, raw) => {
    expect(parseLauncherCmdline(raw)).toBeUndefined();
  });

  it('reads namespace inodes from /proc links', () => {
    expect(nsInode('net:[4026531840]')).toBe(4026531840);
    expect(nsInode('mnt:[1]')).toBe(1);
    expect(nsInode('net:4026531840')).toBeUndefined();
    expect(nsInode('')).toBeUndefined();
  });
});

describe('parseIdentityFile', () => {
  it('maps ports and MACs (normalized) to VMs; an entry may name both', () => {
    const m = parseIdentityFile(
      JSON.stringify([
        { port: 'tap3', vm: 'web-7', vm_uuid: 'u-1', vm_namespace: 'shop' },
        { mac: '52:54:00:AA:00:01', vm: 'db-1' },
        { port: 'vif4.0', mac: '00:16:3e:00:00:04', vm: ' xen-guest ', vm_namespace: 'legacy' },
      ]),
    );
    expect(m.byPort.get('tap3')).toEqual({ name: 'web-7', uuid: 'u-1', namespace: 'shop', source: 'file' });
    expect(m.byMac.get('52:54:00:aa:00:01')).toEqual({ name: 'db-1', uuid: '', namespace: '', source: 'file', mac: '52:54:00:aa:00:01' });
    expect(m.byPort.get('vif4.0')).toBe(m.byMac.get('00:16:3e:00:00:04'));
    expect(m.byPort.get('vif4.0')!.name).toBe('xen-guest');
    expect(parseIdentityFile('[]').byPort.size).toBe(0);
  });

  it.each([
    ['not JSON', '{', /not JSON/],
    ['an object instead of an array', '{"tap3": "web-7"}', /expected a JSON array/],
    ['a non-object entry', '["tap3"]', /entry 0: expected an object/],
    ['an entry without vm', '[{"port": "tap3"}]', /entry 0: vm is required/],
    ['an entry with neither port nor mac', '[{"vm": "a"}]', /entry 0: needs port or mac/],
    ['an unknown key (a typo must not pass silently)', '[{"port": "tap3", "vm": "a", "vm_name": "b"}]', /entry 0: unknown key "vm_name"/],
    ['a number where a string goes', '[{"port": "tap3", "vm": 7}]', /entry 0: vm must be a string/],
    ['an impossible interface name', '[{"port": "a/b", "vm": "a"}]', /entry 0: port "a\/b" is not an interface name/],
    ['a bad MAC', '[{"mac": "52:54:00", "vm": "a"}]', /entry 0: mac "52:54:00" is not a MAC address/],
    ['a port named twice', '[{"port": "tap3", "vm": "a"}, {"port": "tap3", "vm": "b"}]', /entry 1: port tap3 is already mapped/],
    ['a MAC named twice (in any case)', '[{"mac": "52:54:00:00:00:0a", "vm": "a"}, {"mac": "52:54:00:00:00:0A", "vm": "b"}]', /entry 1: mac 52:54:00:00:00:0a is already mapped/],
  ])('refuses %s, naming the entry', (_what, text, err) => {
    expect(() => parseIdentityFile(text)).toThrow(err);
  });
});
