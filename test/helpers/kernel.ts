// What the running kernel can do (probed once per test file), so tests that need a missing
// feature skip with its name; plus BPF collections and event readers closed after each test.
import { existsSync, readFileSync } from 'node:fs';
import type { TestContext } from 'vitest';
import type { BpfEvent } from '../../src/bpf/abi.js';
import { EventReader } from '../../src/bpf/events.js';
import { BpfCollection, type LoadOptions } from '../../src/bpf/loader.js';
import { BridgewatchError } from '../../src/errors.js';
import { BPF_OBJECT, BPF_OBJECT_STATEMAP } from '../../src/paths.js';
import { netnsExists } from '../../src/sys/netns.js';
import { TestNetns, tempStateDir } from './netns.js';

/**
 * bpf: some build of the program loads (tests of classification, maps, attach);
 * kfunc: the kernel build loads (bpf_cast_to_kern_ctx and CO-RE reads of skb->dev, Linux 6.3+),
 *   so "forwarding" is the kernel's own port state at each frame;
 * statemap: the build for older kernels loads (port states from a map user space writes);
 * tcx: BPF_TCX_INGRESS links (Linux 6.6+); without them attach is a clsact filter;
 * vlanFiltering: bridges with vlan_filtering 1 (CONFIG_BRIDGE_VLAN_FILTERING).
 */
export type Feature = 'bpf' | 'kfunc' | 'statemap' | 'tcx' | 'tun' | 'bridge' | 'bridgeBtf' | 'vlanFiltering';

/** Does the kernel's BTF (vmlinux, or the bridge module's) name `name` (a type or a kfunc)? */
export function btfHas(name: string): boolean {
  const needle = Buffer.from(`\0${name}\0`);
  return ['vmlinux', 'bridge'].some((f) => {
    const p = `/sys/kernel/btf/${f}`;
    return existsSync(p) && readFileSync(p).includes(needle);
  });
}

/** Load one build and close it: its attach mode, or why the kernel refused it. */
function tryBuild(portState: 'kernel' | 'netlink'): { mode: 'tcx' | 'tc' } | { refused: string } {
  try {
    const bpf = BpfCollection.load({ stateDir: tempStateDir(), portState });
    const mode = bpf.mode;
    bpf.close();
    return { mode };
  } catch (e) {
    // a contract drift or a bug is ours, not the kernel's: let it fail loudly
    if (!(e instanceof BridgewatchError) || e.code === 'ELAYOUT') throw e;
    return { refused: e.message };
  }
}

function probe(): Partial<Record<Feature, string>> {
  // a missing build is our failure, not the kernel's: let it fail loudly
  for (const o of [BPF_OBJECT, BPF_OBJECT_STATEMAP]) if (!existsSync(o)) throw new Error(`${o} missing: run bash scripts/setup.sh`);
  const out: Partial<Record<Feature, string>> = {};
  const kernel = tryBuild('kernel');
  const statemap = tryBuild('netlink');
  if ('refused' in kernel) out.kfunc = `kfunc bpf_cast_to_kern_ctx (Linux 6.3+): the kernel build does not load (${kernel.refused})`;
  if ('refused' in statemap) out.statemap = `BPF TC classifier with BTF/CO-RE: the statemap build does not load (${statemap.refused})`;
  const loaded = 'mode' in kernel ? kernel : 'mode' in statemap ? statemap : undefined;
  if (!loaded) out.bpf = out.tcx = `BPF TC classifier with BTF/CO-RE (${out.statemap})`;
  else if (loaded.mode !== 'tcx') out.tcx = 'tcx (BPF_TCX_INGRESS links, Linux 6.6+)';
  if (!existsSync('/dev/net/tun')) out.tun = 'tun/tap (/dev/net/tun)';
  const ns = new TestNetns('probe');
  try {
    ns.ip('link', 'add', 'br0', 'type', 'bridge');
    try {
      ns.ip('link', 'add', 'br1', 'type', 'bridge', 'vlan_filtering', '1');
    } catch {
      out.vlanFiltering = 'bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)';
    }
  } catch (e) {
    out.bridge = `Linux bridge (${(e as Error).message})`;
    out.vlanFiltering = out.bridge;
  } finally {
    ns.delete();
  }
  if (!btfHas('net_bridge_port')) out.bridgeBtf = 'BTF for struct net_bridge_port (bridge port state)';
  return out;
}

export const missing = probe();

/** Skip the running test, naming the feature, unless the kernel has all of `features`. */
export function requires(ctx: TestContext, ...features: Feature[]): void {
  for (const f of features) if (missing[f]) ctx.skip(`kernel lacks ${missing[f]}`);
}

// detach works by ifindex in the calling thread's namespace: close where we attached
const open = new Map<BpfCollection, TestNetns>();
const readers = new Set<EventReader>();

/** Load a collection with a private state dir; closeAllBpf() releases it inside `ns`. */
export function loadBpf(ns: TestNetns, opts: LoadOptions = {}): BpfCollection {
  const bpf = BpfCollection.load({ stateDir: tempStateDir(), ...opts });
  open.set(bpf, ns);
  return bpf;
}

/** Events from bpf's ring buffer; call poll() to drain what the kernel has written so far. */
export function events(bpf: BpfCollection): { list: BpfEvent[]; poll: () => BpfEvent[] } {
  const list: BpfEvent[] = [];
  // the reader's own timer is pushed out of the way: tests drain explicitly, when they choose
  const reader = new EventReader(bpf.maps.events, { onEvent: (ev) => list.push(ev), intervalMs: 3_600_000 });
  reader.start();
  readers.add(reader);
  return {
    list,
    poll: () => {
      reader.poll();
      return list;
    },
  };
}

export function closeAllBpf(): void {
  for (const r of readers) r.stop();
  readers.clear();
  for (const [b, ns] of open) {
    if (netnsExists(ns.name)) ns.run(() => b.close());
    else {
      for (const a of b.attachments()) b.forget(a.ifindex); // its devices went with the namespace
      b.close();
    }
  }
  open.clear();
}
