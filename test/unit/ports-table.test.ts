// The link table, fed a captured kernel stream and hand-made messages: which events come out,
// in which order, and what the table holds afterwards.
import { describe, expect, it } from 'vitest';
import { AF_BRIDGE, AF_UNSPEC, decodeLinkMessage, type LinkMsg } from '../../src/ports/decode.js';
import { compileRules, defaultRules, type WatchRules } from '../../src/ports/match.js';
import { LinkTable, type ApplyContext, type TableEvent } from '../../src/ports/table.js';
import type { PortState } from '../../src/ports/types.js';
import { captured } from '../helpers/watch-fixtures.js';

const live = (tsNs = 1n): ApplyContext => ({ tsNs, initial: false, resync: false });
const table = (rules: Partial<WatchRules> = {}) => new LinkTable(compileRules({ ...defaultRules(), ...rules }));

/** `created:tap0`, `joined:tap0@br0/disabled`, `bridge:br0`, ... */
function brief(events: TableEvent[]): string[] {
  return events.map((t) => {
    if (t.name === 'bridge') return `bridge:${t.event.bridge.name}${t.event.prev ? '(changed)' : ''}`;
    if (t.name === 'bridgeDeleted') return `bridgeDeleted:${t.event.name}(${t.event.reason})`;
    const e = t.event;
    switch (e.type) {
      case 'joined':
        return `joined:${e.name}@${e.bridge}/${e.state}`;
      case 'left':
        return `left:${e.name}@${e.bridge}`;
      case 'state':
        return `state:${e.name}:${e.prev}->${e.state}`;
      case 'renamed':
        return `renamed:${e.oldName}->${e.name}`;
      case 'carrier':
        return `carrier:${e.name}:${e.carrier ? 'C' : 'c'}${e.operUp ? 'O' : 'o'}`;
      default:
        return `${e.type}:${e.name}`;
    }
  });
}

function link(p: Partial<LinkMsg> & { ifindex: number; name: string }): LinkMsg {
  return { op: 'new', family: AF_UNSPEC, mac: null, master: 0, up: true, operUp: true, carrier: true, operstate: 6, info: null, protinfoState: null, ...p };
}
const kind = (k: string, portState: PortState | null = null, slaveKind = portState ? 'bridge' : '') => ({ kind: k, slaveKind, bridge: null, portState });
const bridge = (ifindex: number, name: string, stpState = 0, forwardDelayCs = 0) =>
  link({ ifindex, name, info: { kind: 'bridge', slaveKind: '', bridge: { stpState, forwardDelayCs, vlanFiltering: false }, portState: null } });
const brport = (ifindex: number, name: string, master: number, state: PortState): LinkMsg =>
  link({ ifindex, name, family: AF_BRIDGE, master, carrier: null, protinfoState: state });

describe('LinkTable on the captured kernel stream', () => {
  it('turns the capture into the port story, in order', () => {
    const t = table();
    const out = captured.flatMap((m, i) => t.apply(decodeLinkMessage(m.type, m.data)!, live(BigInt(i))));
    expect(brief(out)).toEqual([
      'bridge:br0',
      'created:tap0',
      'carrier:tap0:CO',
      'joined:tap0@br0/disabled',
      'state:tap0:disabled->listening',
      'state:tap0:listening->learning',
      // veth1 unbridged: not watched; the AF_BRIDGE DELLINK is not a delete
      'left:tap0@br0',
      'deleted:tap0',
    ]);
    const first = out[0];
    expect(first.name === 'bridge' && first.event.bridge).toEqual({ ifindex: 2, name: 'br0', stpEnabled: true, forwardDelaySec: 2, vlanFiltering: false });
    expect(out.map((e) => e.event.tsNs)).toEqual([0n, 1n, 2n, 3n, 4n, 5n, 8n, 9n]);
    expect(t.links()).toEqual([]);
    expect(t.bridges()).toEqual([{ ifindex: 2, name: 'br0', stpEnabled: true, forwardDelaySec: 2, vlanFiltering: false }]);
  });

  it('holds the tap as a bridged guest port while it is in br0', () => {
    const t = table();
    for (const m of captured.slice(0, 6)) t.apply(decodeLinkMessage(m.type, m.data)!, live());
    expect(t.links()).toEqual([
      { ifindex: 3, name: 'tap0', kind: 'tun', mac: '36:fb:3a:b5:fe:a5', master: 2, masterName: 'br0', bridged: true, state: 'learning', up: true, carrier: true, operUp: true, guest: true },
    ]);
    expect(t.link(3)?.state).toBe('learning');
    expect(t.link(2)).toBeUndefined(); // bridges are not links()
  });
});

describe('LinkTable rules', () => {
  it('an uplink veth is watched only while bridged: created (already bridged), then left+unwatched', () => {
    const t = table();
    t.apply(bridge(2, 'br0'), live());
    expect(brief(t.apply(link({ ifindex: 5, name: 'veth0', info: kind('veth') }), live()))).toEqual([]);
    const joined = t.apply(link({ ifindex: 5, name: 'veth0', master: 2, info: kind('veth', 'forwarding') }), live());
    // one event: the created link is already in br0 (consumers treat link.bridged as the join)
    expect(brief(joined)).toEqual(['created:veth0']);
    expect(t.link(5)).toMatchObject({ guest: false, bridged: true, masterName: 'br0', state: 'forwarding' });
    expect(brief(t.apply(link({ ifindex: 5, name: 'veth0', info: kind('veth') }), live()))).toEqual(['left:veth0@br0', 'unwatched:veth0']);
    expect(t.links()).toEqual([]);
  });

  it('rename keeps the ifindex; renaming out of the rules unwatches', () => {
    const t = table();
    t.apply(link({ ifindex: 3, name: 'tap0', info: kind('tun') }), live());
    expect(brief(t.apply(link({ ifindex: 3, name: 'tap1', info: kind('tun') }), live()))).toEqual(['renamed:tap0->tap1']);
    expect(t.link(3)?.name).toBe('tap1');
    expect(brief(t.apply(link({ ifindex: 3, name: 'qemu0', info: kind('tun') }), live()))).toEqual(['renamed:tap1->qemu0', 'unwatched:qemu0']);
    // and back in: a fresh 'created'
    expect(brief(t.apply(link({ ifindex: 3, name: 'vnet0', info: kind('tun') }), live()))).toEqual(['created:vnet0']);
  });

  it('joining an excluded bridge unwatches; its AF_BRIDGE messages say nothing', () => {
    const t = table({ excludeBridges: ['virbr*'] });
    expect(brief(t.apply(bridge(2, 'virbr0'), live()))).toEqual([]);
    t.apply(link({ ifindex: 3, name: 'tap0', info: kind('tun') }), live());
    expect(brief(t.apply(link({ ifindex: 3, name: 'tap0', master: 2, info: kind('tun', 'disabled') }), live()))).toEqual(['unwatched:tap0']);
    expect(brief(t.apply(brport(3, 'tap0', 2, 'forwarding'), live()))).toEqual([]);
    expect(t.bridges()).toEqual([]);
  });

  it('state events only on change, only for the current master', () => {
    const t = table();
    t.apply(bridge(2, 'br0'), live());
    t.apply(link({ ifindex: 3, name: 'tap0', master: 2, info: kind('tun', 'disabled') }), live());
    expect(brief(t.apply(brport(3, 'tap0', 2, 'disabled'), live()))).toEqual([]);
    expect(brief(t.apply(brport(3, 'tap0', 2, 'forwarding'), live()))).toEqual(['state:tap0:disabled->forwarding']);
    expect(brief(t.apply(brport(3, 'tap0', 2, 'forwarding'), live()))).toEqual([]);
    expect(brief(t.apply(brport(3, 'tap0', 9, 'blocking'), live()))).toEqual([]); // stale master
    expect(brief(t.apply(brport(77, 'tap77', 2, 'blocking'), live()))).toEqual([]); // unknown link
    expect(brief(t.apply({ ...brport(3, 'tap0', 2, 'forwarding'), op: 'del' }, live()))).toEqual([]);
    expect(t.link(3)?.state).toBe('forwarding');
  });

  it('moving between bridges: left then joined', () => {
    const t = table();
    t.apply(bridge(2, 'br0'), live());
    t.apply(bridge(4, 'br1'), live());
    t.apply(link({ ifindex: 3, name: 'tap0', master: 2, info: kind('tun', 'forwarding') }), live());
    expect(brief(t.apply(link({ ifindex: 3, name: 'tap0', master: 4, info: kind('tun', 'disabled') }), live()))).toEqual([
      'left:tap0@br0',
      'joined:tap0@br1/disabled',
    ]);
  });

  it('a port seen before its bridge is re-evaluated when the bridge appears', () => {
    const t = table();
    expect(brief(t.apply(link({ ifindex: 3, name: 'veth0', master: 9, info: kind('veth', 'forwarding') }), live()))).toEqual([]);
    expect(brief(t.apply(link({ ifindex: 4, name: 'tap0', master: 9, info: kind('tun', 'forwarding') }), live()))).toEqual(['created:tap0']);
    expect(brief(t.apply(bridge(9, 'br9'), live()))).toEqual(['bridge:br9', 'created:veth0', 'joined:tap0@br9/forwarding']);
  });

  it('bridge changes, rename out of the rules, delete', () => {
    const t = table({ bridges: ['br*'] });
    expect(brief(t.apply(bridge(2, 'br0', 1, 1500), live()))).toEqual(['bridge:br0']);
    expect(brief(t.apply(bridge(2, 'br0', 1, 1500), live()))).toEqual([]);
    const changed = t.apply(bridge(2, 'br0', 0, 400), live());
    expect(changed).toHaveLength(1);
    expect(changed[0].name === 'bridge' && changed[0].event).toMatchObject({
      prev: { stpEnabled: true, forwardDelaySec: 15 },
      bridge: { stpEnabled: false, forwardDelaySec: 4 },
    });
    t.apply(link({ ifindex: 3, name: 'tap0', master: 2, info: kind('tun', 'forwarding') }), live());
    expect(brief(t.apply(bridge(2, 'ovs0'), live()))).toEqual(['bridgeDeleted:ovs0(unwatched)', 'unwatched:tap0']);
    expect(brief(t.apply(bridge(2, 'br5'), live()))).toEqual(['bridge:br5', 'created:tap0']);
    expect(t.link(3)).toMatchObject({ masterName: 'br5', bridged: true, state: 'forwarding' });
    // the kernel releases ports before deleting a bridge; if we missed that, the delete does it
    expect(brief(t.apply({ ...bridge(2, 'br5'), op: 'del' }, live()))).toEqual(['left:tap0@br5', 'bridgeDeleted:br5(deleted)']);
    expect(t.link(3)).toMatchObject({ bridged: false, master: 2, masterName: null, state: null });
  });

  it('carrier events on carrier, operstate or admin changes', () => {
    const t = table();
    t.apply(link({ ifindex: 3, name: 'tap0', up: false, operUp: false, carrier: true, info: kind('tun') }), live());
    expect(brief(t.apply(link({ ifindex: 3, name: 'tap0', up: true, operUp: true, carrier: true, info: kind('tun') }), live()))).toEqual(['carrier:tap0:CO']);
    expect(brief(t.apply(link({ ifindex: 3, name: 'tap0', up: true, operUp: false, carrier: false, info: kind('tun') }), live()))).toEqual(['carrier:tap0:co']);
    expect(brief(t.apply(link({ ifindex: 3, name: 'tap0', up: true, operUp: false, carrier: false, info: kind('tun') }), live()))).toEqual([]);
  });

  it('deleting an unknown or unwatched link says nothing', () => {
    const t = table();
    expect(t.apply(link({ ifindex: 8, name: 'x', op: 'del' }), live())).toEqual([]);
    t.apply(link({ ifindex: 8, name: 'eth8' }), live());
    expect(t.apply(link({ ifindex: 8, name: 'eth8', op: 'del' }), live())).toEqual([]);
  });
});

describe('LinkTable dumps', () => {
  it('marks dump entries initial, and reconcile deletes what a resync dump no longer lists', () => {
    const t = table();
    t.epoch++;
    const initial: ApplyContext = { tsNs: 1n, initial: true, resync: false };
    const first = [bridge(2, 'br0'), link({ ifindex: 3, name: 'tap0', master: 2, info: kind('tun', 'forwarding') }), link({ ifindex: 4, name: 'tap1', info: kind('tun') })].flatMap(
      (m) => t.apply(m, initial),
    );
    expect(brief(first)).toEqual(['bridge:br0', 'created:tap0', 'created:tap1']);
    expect(first.every((e) => (e.name === 'port' && e.event.type === 'created' ? e.event.initial : e.name === 'bridge' && e.event.initial))).toBe(true);
    expect(t.reconcile(initial)).toEqual([]);

    // overrun: tap0 was deleted, tap1 left nothing, tap2 appeared; only the dump tells us
    t.epoch++;
    const resync: ApplyContext = { tsNs: 9n, initial: false, resync: true };
    const seen = [bridge(2, 'br0'), link({ ifindex: 4, name: 'tap1', info: kind('tun') }), link({ ifindex: 5, name: 'tap2', info: kind('tun') })].flatMap((m) =>
      t.apply(m, resync),
    );
    expect(brief(seen)).toEqual(['created:tap2']);
    const gone = t.reconcile(resync);
    expect(brief(gone)).toEqual(['deleted:tap0']);
    expect(gone[0].event).toMatchObject({ resync: true, tsNs: 9n });
    expect(t.links().map((l) => l.name)).toEqual(['tap1', 'tap2']);
  });
});
