// JSON views of the tracker's records: monotonic kernel times become wall-clock ISO strings.
import type { MacTrack, PortTrack } from './model.js';
import { worst } from './verdict.js';
import type { Clock, Fact, FactView, MacView, PortView } from './types.js';

export function wallTime(clock: Clock, tsNs: bigint): string {
  const ms = clock.wallMs() - Number(clock.monoNs() - tsNs) / 1e6;
  return new Date(Math.round(ms)).toISOString();
}

export function factView(f: Fact, clock: Clock): FactView {
  const { tsNs, ifindex: _i, ...rest } = f;
  return { ...rest, at: wallTime(clock, tsNs), monoNs: tsNs.toString() };
}

function macView(m: MacTrack, clock: Clock): MacView {
  return {
    mac: m.mac,
    verdict: m.verdict,
    vlan: m.vlan,
    firstFrameAt: wallTime(clock, m.firstNs),
    announcements: m.announcements,
    framesBeforeForwarding: m.unfwdFrames,
    attachDelaySeconds: m.attachDelaySec,
    firstFrameDelaySeconds: m.firstFrameDelaySec,
    rarpSent: m.rarpSent,
  };
}

export function portView(p: PortTrack, clock: Clock): PortView {
  const macs = [...p.macs.values()];
  return {
    name: p.name,
    ifindex: p.ifindex,
    bridge: p.bridge,
    kind: p.kind,
    guest: p.guest,
    state: p.state,
    carrier: p.carrier,
    verdict: worst(macs.map((m) => m.verdict)),
    createdAt: wallTime(clock, p.createdNs),
    forwardingSince: p.forwardingSinceNs === undefined ? null : wallTime(clock, p.forwardingSinceNs),
    macs: macs.map((m) => macView(m, clock)),
    timeline: p.timeline.toArray().map((f) => factView(f, clock)),
  };
}
