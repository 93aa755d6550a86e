// What the running kernel can do (probed once per test file), so tests that need a missing
// feature skip with its name; plus BPF collections and event readers closed after each test.
import { existsSync, readFileSync } from 'node:fs';
import type { TestContext } from 'vitest';
import type { BpfEvent } from '../../src/bpf/abi.js';
import { EventReader } from '../../src/bpf/events.js';
import { BpfCollection, tcxSupported, type LoadOptions } from '../../src/bpf/loader.js';
import { BridgewatchError } from '../../src/errors.js';
import { BPF_OBJECT } from '../../src/paths.js';
import { netnsExists } from '../../src/sys/netns.js';
import { TestNetns, tempStateDir } from './netns.js';

export type Feature = 'bpf' | 'tcx' | 'tun' | 'bridge' | 'bridgeBtf';

function btfHas(name: string): boolean {
  const needle = Buffer.from(`\0${name}\0`);
  return ['vmlinux', 'bridge'].some((f) => {
    const p = `/sys/kernel/btf/${f}`;
    return existsSync(p) && readFileSync(p).includes(needle);
  });
}

function probe(): Partial<Record<Feature, string>> {
  // a missing build is our failure, not the kernel's: let it fail loudly
  if (!existsSync(BPF_OBJECT)) throw new Error(`${BPF_OBJECT} missing: run bash scripts/setup.sh`);
  const out: Partial<Record<Feature, string>> = {};
  try {
    BpfCollection.load({ stateDir: tempStateDir() }).close();
    if (!tcxSupported()) out.tcx = 'tcx (BPF_TCX_INGRESS links, Linux 6.6+)';
  } catch (e) {
    if (!(e instanceof BridgewatchError) || e.code !== 'ENOTSUP') throw e;
    out.bpf = out.tcx = `BPF TC classifier with BTF/CO-RE and kfunc bpf_cast_to_kern_ctx (${e.message})`;
  }
  if (!existsSync('/dev/net/tun')) out.tun = 'tun/tap (/dev/net/tun)';
  const ns = new TestNetns('probe');
  try {
    ns.ip('link', 'add', 'br0', 'type', 'bridge');
  } catch (e) {
    out.bridge = `Linux bridge (${(e as Error).message})`;
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
