// The loader's attach lifecycle on real devices: one program per device whatever happens
// (re-attach, crash, restart in another mode), and clean removal of what we created. The
// default (auto) is a clsact filter: tcx links hold rtnl for an RCU grace period per attach.
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EVENT, LAYOUTS, layoutDiffs, MAC_STATS, type StructLayout } from '../../src/bpf/abi.js';
import { btfStruct } from '../../src/bpf/btf.js';
import { libbpf } from '../../src/bpf/libbpf.js';
import { BpfCollection, TC_HANDLE, TC_PRIORITY } from '../../src/bpf/loader.js';
import { BridgewatchError } from '../../src/errors.js';
import { BPF_OBJECT, PACKAGE_ROOT } from '../../src/paths.js';
import { attachAndKill } from '../helpers/crash.js';
import { ipv4Frame, mac } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { closeAllBpf, loadBpf, requires, type Feature } from '../helpers/kernel.js';
import { cleanupAll, TestNetns, tempStateDir, waitFor } from '../helpers/netns.js';
import { bpfFilters, filters, hasClsact } from '../helpers/tc.js';

const GUEST = mac('52:54:00:00:00:02');
const OURS = { pref: TC_PRIORITY, handle: `0x${TC_HANDLE.toString(16)}`, progName: 'tc_ingress' };
const needs: Record<'tc' | 'tcx' | 'auto', Feature[]> = { tc: ['bpf', 'tun'], tcx: ['bpf', 'tun', 'tcx'], auto: ['bpf', 'tun'] };

let guest: Guest | undefined;
afterEach(() => {
  closeAllBpf();
  guest?.close();
  guest = undefined;
  cleanupAll();
});

/** A namespace with a guest on tap0 (the device we attach to). */
function device(): { ns: TestNetns; g: Guest } {
  const ns = new TestNetns('ldr');
  guest = new Guest(ns, 'tap0', GUEST);
  return { ns, g: guest };
}

/** Our programs on tap0, counted two independent ways. */
function ours(ns: TestNetns, bpf: BpfCollection, ifindex: number) {
  const q = ns.run(() => bpf.query(ifindex));
  const filters = bpfFilters(ns, 'tap0');
  expect(q.tcFilter).toBe(filters.length > 0);
  return { tcx: q.tcx, tc: filters.length, filters };
}

/** The program on tap0 runs and feeds this collection's map. */
async function proveLive(bpf: BpfCollection, g: Guest): Promise<void> {
  const before = bpf.mac(g.ifindex, GUEST)?.frames ?? 0;
  g.send(ipv4Frame(GUEST));
  await waitFor('a frame counted by the attached program', () => bpf.mac(g.ifindex, GUEST)?.frames === before + 1);
}

/** The clsact qdiscs the state dir's journal says we created ("+ifindex", "-ifindex" lines). */
const owned = (stateDir: string): number[] => {
  let text = '';
  try {
    text = readFileSync(join(stateDir, 'clsact-owned'), 'utf8');
  } catch {
    return [];
  }
  const set = new Set<number>();
  for (const [, sign, i] of text.matchAll(/^([+-])(\d+)$/gm)) sign === '+' ? set.add(Number(i)) : set.delete(Number(i));
  return [...set];
};

// auto is clsact wherever the kernel has it, as here: see the comment at AttachMode
describe.each([
  ['tcx', 'tcx'],
  ['tc', 'tc'],
  ['auto', 'tc'],
] as const)('attach and detach in %s mode', (mode, made) => {
  it('attaching twice keeps exactly one program; detach leaves none and no clsact of ours', async (ctx) => {
    requires(ctx, ...needs[mode]);
    const { ns, g } = device();
    const stateDir = tempStateDir();
    const bpf = loadBpf(ns, { mode, stateDir });
    expect(bpf.mode).toBe(made);
    ns.run(() => bpf.attach(g.ifindex, 'tap0'));
    ns.run(() => bpf.attach(g.ifindex, 'tap0'));
    const n = ours(ns, bpf, g.ifindex);
    expect([n.tcx, n.tc]).toEqual(made === 'tcx' ? [1, 0] : [0, 1]);
    if (made === 'tc') expect(n.filters[0]).toMatchObject(OURS);
    expect(hasClsact(ns, 'tap0')).toBe(made === 'tc');
    expect(owned(stateDir)).toEqual(made === 'tc' ? [g.ifindex] : []); // recorded as it is made
    expect(bpf.attachments()).toEqual([{ ifindex: g.ifindex, ifname: 'tap0', mode: made }]);
    await proveLive(bpf, g);

    ns.run(() => bpf.detach(g.ifindex));
    expect(ours(ns, bpf, g.ifindex)).toMatchObject({ tcx: 0, tc: 0 });
    expect(hasClsact(ns, 'tap0')).toBe(false);
    expect(owned(stateDir)).toEqual([]);
    expect(bpf.attachments()).toEqual([]);
  });

  it('reports an unknown ifindex as "attach <mode> ingress on <name>: No such device"', (ctx) => {
    requires(ctx, ...needs[mode]);
    const { ns } = device();
    const bpf = loadBpf(ns, { mode });
    const attach = (i: number, name: string) => () => ns.run(() => bpf.attach(i, name));
    expect(attach(4242, 'ghost0')).toThrow(
      expect.objectContaining({ code: 'ENODEV', message: `attach ${made} ingress on ghost0: No such device` }),
    );
    expect(attach(0, 'zero0')).toThrow(`attach ${made} ingress on zero0: invalid ifindex 0`);
    expect(bpf.attachments()).toEqual([]);
  });
});

describe.each(['tc', 'auto'] as const)("%s mode and someone else's clsact", (mode) => {
  it('keeps a clsact qdisc (and its filter) that existed before us', async (ctx) => {
    requires(ctx, ...needs[mode]);
    const { ns, g } = device();
    ns.tool('tc', 'qdisc', 'add', 'dev', 'tap0', 'clsact');
    ns.tool('tc', 'filter', 'add', 'dev', 'tap0', 'ingress', 'pref', '1', 'u32', 'match', 'u32', '0', '0');
    const stateDir = tempStateDir();
    const bpf = loadBpf(ns, { mode, stateDir });
    ns.run(() => bpf.attach(g.ifindex, 'tap0'));
    expect(filters(ns, 'tap0')).toEqual([`bpf@${TC_PRIORITY}`, 'u32@1']);
    expect(owned(stateDir)).toEqual([]); // not ours
    await proveLive(bpf, g);
    ns.run(() => bpf.detach(g.ifindex));
    expect(hasClsact(ns, 'tap0')).toBe(true);
    expect(filters(ns, 'tap0')).toEqual(['u32@1']);
  });
});

describe('layout contract', () => {
  function objectBtf<T>(path: string, fn: (btf: unknown) => T): T {
    const l = libbpf();
    const obj = l.object_open_file(path, null);
    if (!obj) throw new Error(`open ${path}`);
    try {
      return fn(l.object_btf(obj));
    } finally {
      l.object_close(obj);
    }
  }

  it('layoutDiffs names the field and struct that differ', () => {
    objectBtf(BPF_OBJECT, (btf) => {
      expect(LAYOUTS.flatMap((x) => layoutDiffs(x, btfStruct(btf, x.name)))).toEqual([]);
      const moved: StructLayout = {
        ...MAC_STATS,
        size: 160,
        fields: [...MAC_STATS.fields.map((f) => (f.name === 'vlan' ? { ...f, offset: 130 } : f)), { name: 'extra', offset: 136, size: 8 }],
      };
      expect(layoutDiffs(moved, btfStruct(btf, 'bw_mac_stats'))).toEqual([
        'struct bw_mac_stats: size 136, contract says 160',
        'struct bw_mac_stats: field vlan at offset 132 size 2, contract says offset 130 size 2',
        'struct bw_mac_stats: field extra missing',
      ]);
      expect(layoutDiffs(EVENT, btfStruct(btf, 'bw_nope'))).toEqual(['struct bw_event: missing from the BPF object']);
    });
  });

  it('refuses to load an object built from a drifted header, naming the fields', (ctx) => {
    requires(ctx, 'bpf');
    try {
      execFileSync('clang', ['--version'], { stdio: 'pipe' });
    } catch {
      ctx.skip('clang not installed: cannot build a drifted object');
    }
    // same size, so only the field-by-field BTF check can notice: first_state/settled now precede vlan
    const dir = tempStateDir();
    cpSync(join(PACKAGE_ROOT, 'bpf'), join(dir, 'bpf'), { recursive: true });
    const h = join(dir, 'bpf/bridgewatch.h');
    const orig = readFileSync(h, 'utf8');
    const drifted = orig.replace(
      /(\t__u16 vlan;[^\n]*\n)(\t__u8 first_state;[^\n]*\n\t__u8 settled;[^\n]*\n)/,
      (_, vlan: string, rest: string) => rest + vlan,
    );
    expect(drifted).not.toBe(orig);
    writeFileSync(h, drifted);
    execFileSync('bash', [join(dir, 'bpf/build.sh'), join(dir, 'out')], { stdio: 'pipe' });
    const path = join(dir, 'out/bridgewatch.bpf.o');
    expect(() => BpfCollection.load({ objectPath: path, stateDir: dir })).toThrow(
      new BridgewatchError(
        'ELAYOUT',
        `check layout of ${path}: ` +
          'struct bw_mac_stats: field vlan at offset 134 size 2, contract says offset 132 size 2; ' +
          'struct bw_mac_stats: field first_state at offset 132 size 1, contract says offset 134 size 1; ' +
          'struct bw_mac_stats: field settled at offset 133 size 1, contract says offset 135 size 1',
      ),
    );
  });
});

describe('after a crash (SIGKILL, no cleanup)', () => {
  it('a tc-mode run killed, then a tcx attach: exactly one of our programs remains', async (ctx) => {
    requires(ctx, ...needs.tcx);
    const { ns, g } = device();
    const stateDir = tempStateDir();
    await attachAndKill(ns, 'tap0', 'tc', stateDir);
    expect(bpfFilters(ns, 'tap0')).toEqual([expect.objectContaining(OURS)]); // orphaned, still running
    expect(owned(stateDir)).toEqual([g.ifindex]);

    const bpf = loadBpf(ns, { mode: 'tcx', stateDir });
    ns.run(() => bpf.attach(g.ifindex, 'tap0'));
    expect(ours(ns, bpf, g.ifindex)).toMatchObject({ tcx: 1, tc: 0 });
    expect(hasClsact(ns, 'tap0')).toBe(false); // the dead run created it, so we remove it
    expect(owned(stateDir)).toEqual([]);
    await proveLive(bpf, g);
  });

  it('a tc-mode run killed, then a tc attach: our filter is replaced, not stacked', async (ctx) => {
    requires(ctx, ...needs.tc);
    const { ns, g } = device();
    const stateDir = tempStateDir();
    await attachAndKill(ns, 'tap0', 'tc', stateDir);
    const [dead] = bpfFilters(ns, 'tap0');

    const bpf = loadBpf(ns, { mode: 'tc', stateDir });
    ns.run(() => bpf.attach(g.ifindex, 'tap0'));
    const n = ours(ns, bpf, g.ifindex);
    expect(n).toMatchObject({ tcx: 0, tc: 1 });
    expect(n.filters[0]).toMatchObject(OURS);
    expect(n.filters[0].progId).not.toBe(dead.progId);
    await proveLive(bpf, g);

    ns.run(() => bpf.close()); // and the clsact the dead run created goes with our detach
    expect(hasClsact(ns, 'tap0')).toBe(false);
    expect(owned(stateDir)).toEqual([]);
  });

  it('a default-mode run killed, then a default-mode attach: one filter, ours; close removes the clsact the dead run made', async (ctx) => {
    requires(ctx, ...needs.auto);
    const { ns, g } = device();
    const stateDir = tempStateDir();
    await attachAndKill(ns, 'tap0', 'auto', stateDir);
    const [dead] = bpfFilters(ns, 'tap0');
    expect(dead).toMatchObject(OURS); // a clsact filter outlives its process
    expect(owned(stateDir)).toEqual([g.ifindex]);

    const bpf = loadBpf(ns, { stateDir });
    ns.run(() => bpf.attach(g.ifindex, 'tap0'));
    const n = ours(ns, bpf, g.ifindex);
    expect(n).toMatchObject({ tcx: 0, tc: 1 });
    expect(n.filters[0].progId).not.toBe(dead.progId);
    await proveLive(bpf, g);
    ns.run(() => bpf.close());
    expect(hasClsact(ns, 'tap0')).toBe(false);
    expect(owned(stateDir)).toEqual([]);
  });

  it('a tcx-mode run killed: the kernel drops its link with its last fd', async (ctx) => {
    requires(ctx, ...needs.tcx);
    const { ns, g } = device();
    await attachAndKill(ns, 'tap0', 'tcx', tempStateDir());
    const bpf = loadBpf(ns, { mode: 'tcx' });
    await waitFor('no tcx program on tap0', () => ours(ns, bpf, g.ifindex).tcx === 0);
    ns.run(() => bpf.attach(g.ifindex, 'tap0'));
    expect(ours(ns, bpf, g.ifindex)).toMatchObject({ tcx: 1, tc: 0 });
  });
});
