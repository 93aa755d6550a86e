// The migration of a real Linux guest (Debian's kernel, a busybox initramfs; scripts/guest-image.sh)
// between two QEMU processes under TCG, pinged by the client. What a user sees: pings lost, and
// how soon replies come back after host B's tap joins the bridge. Also recorded: whether host B's
// own bridge had learned the guest's MAC on its uplink while the guest ran on host A (a real
// guest's broadcasts and multicasts reach every bridge): then B's bridge drops frames for the
// guest arriving from the uplink until the guest itself transmits from its new port.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BridgewatchError } from '../errors.js';
import { LAB_DIR } from './daemon.js';
import { guestBoot, QEMU_NIC, type GuestImage, type LabNic } from './guest-image.js';
import { Pinger } from './pinger.js';
import { Qemu, type MigrationInfo } from './qemu.js';
import type { ScenarioResult } from './report.js';
import { Stage, type ScenarioOptions } from './stage.js';
import { createTap, deleteTap, GUEST_IP, GUEST_MAC, GUEST_TAP, NS, plugTap, SUBNET_PREFIX, SWITCH_PORT } from './topology.js';
import { mustReach, now, pause, until } from './wait.js';

export interface LinuxScenarioOptions extends ScenarioOptions {
  nic: LabNic;
  image: GuestImage;
  /** host B's tap is in the bridge before the migration (the healthy case) */
  tapOnTime: boolean;
}

/** TCG on a busy machine: a boot takes 5-15 s */
const BOOT_TIMEOUT_MS = 120_000;
/**
 * Migrate only this long after the guest first answered: a just-booted guest still sends what a
 * guest up for a while does not (MLD reports, DAD, and 5 s after its first reply the unicast ARP
 * probe of the client, delay_first_probe_time), and any of it would heal a late tap by chance.
 */
const SETTLE_MS = 7000;
/** recovered: replies without a gap for this long */
const STABLE_MS = 3000;
const PING_TIMEOUT_MS = 1000;

const s1 = (ms: number): string => (ms / 1000).toFixed(1);

/** process.hrtime.bigint() `ns` on the performance.now() clock the lab's times use */
const perfTime = (ns: bigint): number => now() - Number(process.hrtime.bigint() - ns) / 1e6;

function consoleTail(path: string, lines = 8): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-lines).join(' | ') || '(empty)';
  } catch {
    return '(none)';
  }
}

export async function linuxScenario(o: LinuxScenarioOptions): Promise<ScenarioResult & { qemuVersion: string }> {
  const stage = new Stage(o);
  const { progress: p, signal } = o;
  const tag = `[${stage.label}]`;
  let ok = false;
  try {
    await stage.open();
    mkdirSync(LAB_DIR, { recursive: true });
    const dir = mkdtempSync(join(LAB_DIR, 'linux-'));
    stage.defer(() => rmSync(dir, { recursive: true, force: true }));
    // source and destination: the same machine, as migration requires
    const machine = { tap: GUEST_TAP, mac: GUEST_MAC, memoryMb: 128, nic: QEMU_NIC[o.nic], boot: guestBoot(o.image, o.nic, `${GUEST_IP}/${SUBNET_PREFIX}`) };
    const consoleA = join(dir, 'source.console');
    const consoleB = join(dir, 'destination.console');

    // taps as libvirt prepares them: created and up; A's plugged in, B's only if on time
    createTap('a');
    plugTap('a');
    createTap('b');
    const tEarly = now();
    if (o.tapOnTime) plugTap('b');
    const source = await Qemu.start({ ...machine, name: 'source', netns: NS.a, qmpSocket: join(dir, 'source.qmp'), serialLog: consoleA });
    stage.defer(() => source.stop());
    const uri = `unix:${join(dir, 'migrate.sock')}`;
    const dest = await Qemu.start({ ...machine, name: 'destination', netns: NS.b, qmpSocket: join(dir, 'destination.qmp'), serialLog: consoleB, incoming: uri });
    stage.defer(() => dest.stop());
    p.say(
      `${tag} QEMU ${source.version} (TCG): Linux ${o.image.kernelVersion} with ${o.nic} booting on host A; ` +
        `destination -incoming on host B, holding ${GUEST_TAP} (${o.tapOnTime ? 'in br0' : 'in no bridge yet'})`,
    );

    // booted when it answers a ping
    const tBoot = now();
    // its own echo id: a late reply to it must not count as one to the measured pings
    const probe = new Pinger({ ns: NS.client, target: GUEST_IP, intervalMs: 200, timeoutMs: PING_TIMEOUT_MS, id: process.pid + 1 });
    stage.defer(() => probe.close());
    probe.start();
    const up = await until(() => probe.replies.length > 0 || !source.running, BOOT_TIMEOUT_MS, signal, () => p.status(`${tag} booting · ${s1(now() - tBoot)} s`));
    probe.close();
    const tUp = probe.replies[0];
    if (!up || !source.running)
      throw new BridgewatchError('EKERNEL', `boot guest in ${NS.a}: ${source.running ? `no ping reply in ${BOOT_TIMEOUT_MS / 1000} s` : `QEMU ended (${source.exitText}): ${source.log}`}; console: ${consoleTail(consoleA)}`);
    p.say(`${tag} guest answers pings ${s1(now() - tBoot)} s after QEMU started; client pings it every ${o.intervalMs} ms`);

    const pinger = new Pinger({ ns: NS.client, target: GUEST_IP, intervalMs: o.intervalMs, timeoutMs: PING_TIMEOUT_MS });
    stage.defer(() => pinger.close());
    pinger.start();
    await mustReach(`ping ${GUEST_IP} from ${NS.client}`, () => pinger.replies.length > 0, 10_000, signal);
    await mustReach(`switch ${SWITCH_PORT.a}: learn guest ${GUEST_MAC}`, () => stage.fdb.current() === SWITCH_PORT.a, 5000, signal);
    await until(() => now() - tUp >= SETTLE_MS, SETTLE_MS, signal, () => p.status(`${tag} pinging the guest on host A · replies: ${pinger.replies.length}`));

    if (!dest.running) throw new BridgewatchError('EKERNEL', `destination QEMU in ${NS.b} ended (${dest.exitText}) before the migration: ${dest.log || '(no stderr)'}`);
    let info = await source.migrate(uri);
    const tCompleted = now();
    // the destination runs (and QEMU announces) as it has loaded the state, maybe before we saw "completed"
    const resumed = await dest.qmp.waitForEvent('RESUME', () => true, 5000);
    const tResume = Math.min(tCompleted, perfTime(resumed.receivedNs));
    // QEMU 7.2 reports "completed" a moment before it fills in the times
    if (!info['total-time']) info = await source.qmp.execute<MigrationInfo>('query-migrate');
    p.say(`${tag} migrated in ${info['total-time'] ?? '?'} ms (downtime ${info.downtime ?? '?'} ms); host B's bridge had the guest on: ${stage.fdbB.current() ?? 'nothing'}`);
    await source.stop();
    deleteTap('a');

    let tPlug: number | undefined;
    if (!o.tapOnTime) {
      await pause(o.lateMs - (now() - tCompleted), signal);
      tPlug = now();
      plugTap('b');
      p.say(`${tag} hotplug: ${GUEST_TAP} joined br0 on host B ${Math.round(tPlug - tCompleted)} ms after the migration completed`);
    }
    // with the tap on time, "after the join" is after the resume; refined below from the kernel's notification
    let tJoin = tPlug ?? tResume;

    const gap = Math.max(PING_TIMEOUT_MS, 3 * o.intervalMs);
    const steady = () => pinger.steadySince(tJoin, gap);
    const watch = () => {
      if (!dest.running) throw new BridgewatchError('EKERNEL', `guest on ${NS.b}: QEMU ended (${dest.exitText}): ${dest.log}; console: ${consoleTail(consoleB)}`);
      const since = steady();
      p.status(
        `${tag} +${s1(now() - tJoin)} s after the join · ${pinger.sentAt.length} pings, ${pinger.lostBetween(0)} lost · ` +
          (since === undefined ? `silent ${s1(now() - (pinger.lastReplyAt ?? tJoin))} s` : `replies ${s1(now() - since)} s`) +
          ` · switch → ${stage.fdb.current() ?? 'unknown'}`,
      );
    };
    await until(() => {
      const since = steady();
      return since !== undefined && now() - since >= STABLE_MS;
    }, o.capMs, signal, watch);
    p.clear();
    const recovered = steady() !== undefined;
    if (!recovered) p.say(`${tag} no steady replies ${s1(o.capMs)} s after the join: giving up`);
    await pinger.stop();
    if (tPlug !== undefined) tJoin = stage.joinedAt(tPlug);

    const first = pinger.replies.find((t) => t > tJoin);
    const sum = pinger.summary();
    const base = await stage.result(tResume, tJoin, null);
    const rarpSentTotal = stage.daemon ? await stage.daemon.rarpSentTotal() : null;
    ok = true;
    return {
      ...base,
      joinAfterResumeMs: o.tapOnTime ? stage.joinedAt(tEarly) - tResume : base.joinAfterResumeMs,
      pingsSent: sum.sent,
      pingsLost: sum.lost,
      pingsLostAfterJoin: pinger.lostBetween(tJoin),
      outageSeconds: sum.outageMs / 1000,
      outageCapped: !recovered,
      tapOnTime: o.tapOnTime,
      firstReplyAfterJoinMs: first === undefined ? null : first - tJoin,
      rarpSentTotal,
      migrationMs: info['total-time'] ?? null,
      downtimeMs: info.downtime ?? null,
      qemuVersion: source.version,
    };
  } finally {
    await stage.closeAfter(ok, o.keep && ok);
  }
}
