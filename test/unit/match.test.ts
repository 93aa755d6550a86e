import { describe, expect, it } from 'vitest';
import { compileRules, defaultRules, globMatch, validateRules, type PortFacts, type WatchRules } from '../../src/ports/match.js';

describe('globMatch', () => {
  it.each([
    ['tap*', 'tap0', true],
    ['tap*', 'tap', true],
    ['tap*', 'xtap0', false],
    ['t?p0', 'tap0', true],
    ['t?p0', 'tp0', false],
    ['t?p0', 'taap0', false],
    ['*', 'anything', true],
    ['vnet*', 'vnet12', true],
    ['vif*', 'vif3.0', true],
    ['br-*', 'br-int', true],
    ['a.b', 'axb', false], // '.' is literal
    ['tap+', 'tapp', false], // '+' is literal
    ['(x)|y', '(x)|y', true],
    ['^tap$', '^tap$', true],
    ['*0', 'tap10', true],
    ['*0', 'tap01', false],
    ['eth0', 'eth0', true],
    ['eth0', 'eth00', false],
  ])('%s vs %s -> %s', (glob, name, want) => {
    expect(globMatch(glob, name)).toBe(want);
  });
});

describe('validateRules', () => {
  it('fills defaults: every bridge port, and unbridged tap*, vif*, vnet*, macvtap*', () => {
    expect(validateRules(undefined)).toEqual(defaultRules());
    expect(validateRules({})).toEqual(defaultRules());
    expect(defaultRules()).toEqual({
      bridges: ['*'],
      excludeBridges: [],
      devices: ['tap*', 'vif*', 'vnet*', 'macvtap*'],
      excludeDevices: [],
      guests: ['tap*', 'vif*', 'vnet*', 'macvtap*'],
      uplinks: [],
    });
  });

  it('keeps given fields and defaults the rest', () => {
    const r = validateRules({ excludeBridges: ['virbr*'], uplinks: ['eth*', 'bond?'] });
    expect(r.excludeBridges).toEqual(['virbr*']);
    expect(r.uplinks).toEqual(['eth*', 'bond?']);
    expect(r.bridges).toEqual(['*']);
  });

  it('returns copies: defaults cannot be mutated through a result', () => {
    defaultRules().devices.push('x*');
    expect(defaultRules().devices).not.toContain('x*');
  });

  it.each<[string, unknown, RegExp]>([
    ['not an object', 'tap*', /^validate watch rules: expected an object$/],
    ['null', null, /expected an object/],
    ['array', ['tap*'], /expected an object/],
    ['unknown field', { device: ['tap*'] }, /unknown field device \(known: bridges, /],
    ['field not an array', { devices: 'tap*' }, /devices: expected an array of globs/],
    ['element not a string', { bridges: ['br0', 7] }, /bridges\[1\] 7: expected a string, got number/],
    ['null element', { uplinks: [null] }, /uplinks\[0\] null: expected a string, got null/],
    ['empty glob', { devices: [''] }, /devices\[0\] "": empty glob/],
    ['character class', { devices: ['tap[0-9]'] }, /devices\[0\] "tap\[0-9\]": only \* and \? are supported/],
    ['brace', { excludeDevices: ['{a,b}'] }, /only \* and \? are supported/],
    ['backslash', { guests: ['tap\\*'] }, /only \* and \? are supported/],
    ['whitespace', { bridges: ['br 0'] }, /interface names have no whitespace or \//],
    ['slash', { bridges: ['br/0'] }, /interface names have no whitespace or \//],
    ['too long', { devices: ['averyveryverylongname'] }, /longer than 15 bytes/],
  ])('rejects %s', (_what, input, message) => {
    expect(() => validateRules(input)).toThrow(message);
    try {
      validateRules(input);
    } catch (e) {
      expect(e).toMatchObject({ name: 'BridgewatchError', code: 'ECONFIG' });
    }
  });

  it('compileRules validates too', () => {
    expect(() => compileRules({ ...defaultRules(), devices: ['tap[1]'] })).toThrow(/devices\[0\]/);
  });
});

describe('compileRules: which devices are watched', () => {
  const cases: [string, Partial<WatchRules>, PortFacts, boolean][] = [
    ['unbridged tap', {}, { name: 'tap0', kind: 'tun', bridge: null }, true],
    ['unbridged libvirt vnet', {}, { name: 'vnet3', kind: 'tun', bridge: null }, true],
    ['unbridged Xen vif (no kind)', {}, { name: 'vif1.0', kind: '', bridge: null }, true],
    ['unbridged macvtap', {}, { name: 'macvtap0', kind: 'macvtap', bridge: null }, true],
    ['unbridged veth', {}, { name: 'veth0', kind: 'veth', bridge: null }, false],
    ['unbridged eth', {}, { name: 'eth0', kind: '', bridge: null }, false],
    ['unbridged tap with another name (by kind, from creation)', {}, { name: 'guest7', kind: 'tun', bridge: null, l2: true }, true],
    ['unbridged macvtap with another name', {}, { name: 'mv-web7', kind: 'macvtap', bridge: null, l2: true }, true],
    ['unbridged L3 tun (a VPN): no L2 address, no guest', {}, { name: 'tun0', kind: 'tun', bridge: null, l2: false }, false],
    ['unbridged tap named as an uplink', { uplinks: ['guest7'] }, { name: 'guest7', kind: 'tun', bridge: null, l2: true }, false],
    ['unbridged tap, excluded by name', { excludeDevices: ['guest*'] }, { name: 'guest7', kind: 'tun', bridge: null, l2: true }, false],
    ['bridged veth (every port of every bridge)', {}, { name: 'veth0', kind: 'veth', bridge: 'br0' }, true],
    ['bridged eth', {}, { name: 'eth0', kind: '', bridge: 'br0' }, true],
    ['port of an excluded bridge', { excludeBridges: ['virbr*'] }, { name: 'vnet0', kind: 'tun', bridge: 'virbr0' }, false],
    ['port of another bridge', { excludeBridges: ['virbr*'] }, { name: 'tap0', kind: 'tun', bridge: 'br0' }, true],
    ['port of a bridge not included', { bridges: ['br-*'] }, { name: 'veth0', kind: 'veth', bridge: 'br0' }, false],
    ['port of an included bridge', { bridges: ['br-*'] }, { name: 'veth0', kind: 'veth', bridge: 'br-int' }, true],
    ['bridge included and excluded: exclude wins', { bridges: ['br*'], excludeBridges: ['br1'] }, { name: 'tap0', kind: 'tun', bridge: 'br1' }, false],
    ['excluded device, unbridged', { excludeDevices: ['tap9*'] }, { name: 'tap90', kind: 'tun', bridge: null }, false],
    ['excluded device, bridged: exclude wins', { excludeDevices: ['tap9*'] }, { name: 'tap90', kind: 'tun', bridge: 'br0' }, false],
    ['custom device globs', { devices: ['eth*'] }, { name: 'eth1', kind: '', bridge: null }, true],
    ['custom device globs drop the default names', { devices: ['eth*'] }, { name: 'vif1.0', kind: '', bridge: null }, false],
    ['custom device globs keep taps by kind', { devices: ['eth*'] }, { name: 'tap0', kind: 'tun', bridge: null, l2: true }, true],
    ['no unbridged device names at all', { devices: [] }, { name: 'vif1.0', kind: '', bridge: null }, false],
    ['? matches one character', { devices: ['vif?'] }, { name: 'vif12', kind: '', bridge: null }, false],
  ];
  it.each(cases)('%s', (_what, rules, port, want) => {
    expect(compileRules({ ...defaultRules(), ...rules }).port(port)).toBe(want);
  });

  it('bridge() applies bridges and excludeBridges', () => {
    const m = compileRules({ ...defaultRules(), bridges: ['br*', 'virbr0'], excludeBridges: ['br-ex'] });
    expect(['br0', 'br-int', 'virbr0', 'br-ex', 'virbr1', 'ovs0'].map((b) => m.bridge(b))).toEqual([true, true, true, false, false, false]);
  });
});

describe('compileRules: guest port or uplink', () => {
  const cases: [string, Partial<WatchRules>, { name: string; kind: string }, boolean][] = [
    ['tap by kind and name', {}, { name: 'tap0', kind: 'tun' }, true],
    ['tun kind, any name', {}, { name: 'qemu-nic0', kind: 'tun' }, true],
    ['macvtap kind', {}, { name: 'mv0', kind: 'macvtap' }, true],
    ['Xen vif by name', {}, { name: 'vif3.0', kind: '' }, true],
    ['veth uplink', {}, { name: 'veth0', kind: 'veth' }, false],
    ['physical uplink', {}, { name: 'eth0', kind: '' }, false],
    ['bond uplink', {}, { name: 'bond0', kind: 'bond' }, false],
    ['uplinks glob beats the tun kind', { uplinks: ['tap-up*'] }, { name: 'tap-up0', kind: 'tun' }, false],
    ['guests glob makes a veth a guest (containers)', { guests: ['vm-*'] }, { name: 'vm-web1', kind: 'veth' }, true],
    ['uplinks glob beats guests glob', { guests: ['vm-*'], uplinks: ['vm-uplink'] }, { name: 'vm-uplink', kind: 'veth' }, false],
  ];
  it.each(cases)('%s', (_what, rules, port, want) => {
    expect(compileRules({ ...defaultRules(), ...rules }).guest(port)).toBe(want);
  });
});
