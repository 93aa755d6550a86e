// The simulated-guest migration, measured with pings. Real neighbour and FDB timers throughout:
// without help, the client only finds the guest again when its ARP entry for it has gone stale,
// been probed (unicast, to the old host) and failed, and a broadcast ARP request reaches host B.
import { Tap } from '../sys/tun.js';
import { inNetns } from '../sys/netns.js';
import { SimGuest } from './guest.js';
import { Pinger } from './pinger.js';
import type { ScenarioResult } from './report.js';
import { Stage, type ScenarioOptions } from './stage.js';
import { CLIENT_IP, createTap, deleteTap, GATEWAY_IP, GUEST_IP, GUEST_MAC, GUEST_TAP, HOST_BRIDGE, NS, plugTap, SWITCH_PORT, UPLINK } from './topology.js';
import { mustReach, now, pause, until } from './wait.js';

/** pings answered steadily before the migration */
const WARMUP_MS = 3000;
/** the destination (its tap on host B) is ready this long before the switchover */
const DESTINATION_READY_MS = 1000;
/** recovered: replies without a gap for this long */
const STABLE_MS = 5000;
const PING_TIMEOUT_MS = 1000;

const s1 = (ms: number): string => (ms / 1000).toFixed(1);

export async function guestScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const stage = new Stage(o);
  const { progress: p, signal } = o;
  const tag = `[${stage.label}]`;
  let ok = false;
  try {
    await stage.open();
    const guest = new SimGuest(GUEST_MAC, GUEST_IP);
    stage.defer(() => guest.detach());

    // the guest runs on host A, its tap plugged in on time
    createTap('a');
    const tapA = inNetns(NS.a, () => new Tap(GUEST_TAP));
    stage.defer(() => tapA.close());
    plugTap('a');
    guest.attach(tapA);
    // like any guest, it broadcasts while on A (ARP for its gateway): host B's bridge learns its
    // MAC on B's uplink. Not for the client: that would leave the client's entry for the guest
    // STALE, its probe due just after the migration, and cut the outage short by chance.
    guest.resolve(GATEWAY_IP);

    const pinger = new Pinger({ ns: NS.client, target: GUEST_IP, intervalMs: o.intervalMs, timeoutMs: PING_TIMEOUT_MS });
    stage.defer(() => pinger.close());
    pinger.start();
    p.say(`${tag} guest ${GUEST_MAC} ${GUEST_IP} on host A; client ${CLIENT_IP} pings it every ${o.intervalMs} ms`);
    await mustReach(`ping ${GUEST_IP} from ${NS.client}`, () => pinger.replies.length > 0, 10_000, signal);
    await mustReach(`switch ${SWITCH_PORT.a}: learn guest ${GUEST_MAC}`, () => stage.fdb.current() === SWITCH_PORT.a, 5000, signal);
    await mustReach(`${NS.b} ${HOST_BRIDGE}: learn guest ${GUEST_MAC} on ${UPLINK}`, () => stage.fdbB.current() === UPLINK, 5000, signal);

    const tStart = now();
    const warm = () => p.status(`${tag} pinging the guest on host A · replies: ${pinger.replies.length}`);
    await until(() => now() - tStart >= WARMUP_MS - DESTINATION_READY_MS, WARMUP_MS, signal, warm);
    // the destination is prepared before the switchover, as QEMU -incoming is
    createTap('b');
    const tapB = inNetns(NS.b, () => new Tap(GUEST_TAP));
    stage.defer(() => tapB.close());
    await until(() => now() - tStart >= WARMUP_MS, WARMUP_MS, signal, warm);

    // switchover: the guest stops on A (its tap deleted) and resumes on B, announcing at once
    guest.detach();
    tapA.close();
    deleteTap('a');
    guest.attach(tapB);
    const tResume = now();
    guest.announce();
    p.say(`${tag} migrated: the guest resumed on host B and announces itself (QEMU's RARP burst, 0-800 ms, each round with its own gARP and NA) into ${GUEST_TAP}, in no bridge yet`);

    // the hotplug script, late
    await pause(o.lateMs - (now() - tResume), signal);
    const tPlug = now();
    plugTap('b');
    p.say(`${tag} hotplug: ${GUEST_TAP} joined br0 on host B ${Math.round(tPlug - tResume)} ms after the resume`);

    // the first of the replies since the migration with no gap among them (nor since the last)
    const steadySince = (): number | undefined => pinger.steadySince(tResume, Math.max(PING_TIMEOUT_MS, 3 * o.intervalMs));
    let announcedBack = false;
    const watch = () => {
      const since = steadySince();
      if (since !== undefined && !announcedBack) {
        announcedBack = true;
        p.say(`${tag} replies again ${s1(since - tResume)} s after the migration`);
      }
      const last = pinger.lastReplyAt ?? tResume;
      const where = stage.fdb.current() ?? 'unknown';
      // short enough for 80 columns
      p.status(
        `${tag} +${s1(now() - tResume)} s · ${pinger.sentAt.length} pings, ${pinger.lostBetween(0)} lost · ` +
          (since === undefined ? `silent ${s1(now() - last)} s` : `replies ${s1(now() - since)} s`) +
          ` · switch → ${where}`,
      );
    };
    await until(() => {
      const since = steadySince();
      return since !== undefined && now() - since >= STABLE_MS;
    }, o.capMs, signal, watch);
    p.clear();
    // at the cap, replies that are back (if not yet for long) still end the outage
    const recovered = steadySince() !== undefined;
    if (!recovered) p.say(`${tag} no replies ${s1(o.capMs)} s after the migration: giving up`);
    await pinger.stop();

    const tJoin = stage.joinedAt(tPlug);
    const sum = pinger.summary();
    const base = await stage.result(tResume, tJoin, guest.stats.rarpSent);
    ok = true;
    return {
      ...base,
      guestL3Sent: guest.stats.garpSent + guest.stats.naSent,
      pingsSent: sum.sent,
      pingsLost: sum.lost,
      pingsLostAfterJoin: pinger.lostBetween(tJoin),
      outageSeconds: sum.outageMs / 1000,
      outageCapped: !recovered,
    };
  } finally {
    await stage.closeAfter(ok, o.keep && ok);
  }
}
