// What `tc` says is on a device's ingress, read as JSON: the independent view of our hooks.
import type { TestNetns } from './netns.js';

export interface BpfFilter {
  pref: number;
  handle: string;
  progId: number;
  progName: string;
}

interface TcFilterJson {
  kind: string;
  pref: number;
  options?: { handle?: string; prog?: { id: number; name: string } };
}

/** BPF filters on dev's clsact ingress (`tc filter show dev X ingress`); [] without clsact. */
export function bpfFilters(ns: TestNetns, dev: string): BpfFilter[] {
  const all = JSON.parse(ns.tool('tc', '-j', 'filter', 'show', 'dev', dev, 'ingress') || '[]') as TcFilterJson[];
  return all
    .filter((f) => f.kind === 'bpf' && f.options?.prog)
    .map((f) => ({ pref: f.pref, handle: f.options!.handle!, progId: f.options!.prog!.id, progName: f.options!.prog!.name }));
}

/** Every ingress filter (ours and other people's) as `kind@pref`, sorted; tc lists some twice. */
export const filters = (ns: TestNetns, dev: string): string[] => [
  ...new Set(
    (JSON.parse(ns.tool('tc', '-j', 'filter', 'show', 'dev', dev, 'ingress') || '[]') as TcFilterJson[]).map(
      (f) => `${f.kind}@${f.pref}`,
    ),
  ),
].sort();

export const hasClsact = (ns: TestNetns, dev: string): boolean => /\bqdisc clsact\b/.test(ns.tool('tc', 'qdisc', 'show', 'dev', dev));
