// The same migration with two real QEMU processes (TCG, no disk, no guest OS). QEMU itself sends
// the RARP burst from the destination; with nothing inside to answer pings, the measure is the
// switch's FDB: when does it map the guest's MAC to the port toward host B?
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ANNOUNCE_DEFAULTS, announceOffsets } from '../announce/schedule.js';
import { LAB_DIR } from './daemon.js';
import { Qemu } from './qemu.js';
import type { ScenarioResult } from './report.js';
import { Stage, type ScenarioOptions } from './stage.js';
import { createTap, deleteTap, GUEST_MAC, GUEST_TAP, NS, plugTap, SWITCH_PORT } from './topology.js';
import { mustReach, now, pause, until } from './wait.js';

export async function qemuScenario(o: ScenarioOptions): Promise<ScenarioResult & { qemuVersion: string }> {
  const stage = new Stage(o);
  const { progress: p, signal } = o;
  const tag = `[${stage.label}]`;
  let ok = false;
  try {
    await stage.open();
    mkdirSync(LAB_DIR, { recursive: true });
    const dir = mkdtempSync(join(LAB_DIR, 'qemu-'));
    stage.defer(() => rmSync(dir, { recursive: true, force: true }));
    const common = { tap: GUEST_TAP, mac: GUEST_MAC, memoryMb: 64 };

    // taps as libvirt prepares them: created and up; A's plugged in, B's not yet
    createTap('a');
    plugTap('a');
    const source = await Qemu.start({ ...common, name: 'source', netns: NS.a, qmpSocket: join(dir, 'source.qmp') });
    stage.defer(() => source.stop());
    createTap('b');
    const uri = `unix:${join(dir, 'migrate.sock')}`;
    const dest = await Qemu.start({ ...common, name: 'destination', netns: NS.b, qmpSocket: join(dir, 'destination.qmp'), incoming: uri });
    stage.defer(() => dest.stop());
    p.say(`${tag} QEMU ${source.version}: source on host A (${GUEST_TAP} in br0), destination -incoming on host B (${GUEST_TAP} in no bridge)`);

    // no guest OS talks, so make the switch learn the guest on host A the way a running one would
    await source.announceSelf({ rounds: 1 });
    await mustReach(`switch ${SWITCH_PORT.a}: learn guest ${GUEST_MAC}`, () => stage.fdb.current() === SWITCH_PORT.a, 5000, signal);

    const info = await source.migrate(uri);
    const tResume = now(); // the destination announces as soon as it has loaded the state
    p.say(`${tag} migrated in ${info['total-time'] ?? '?'} ms: the destination QEMU sends its RARP burst into ${GUEST_TAP}, in no bridge yet`);
    await source.stop();
    deleteTap('a');

    await pause(o.lateMs - (now() - tResume), signal);
    const tPlug = now();
    plugTap('b');
    p.say(`${tag} hotplug: ${GUEST_TAP} joined br0 on host B ${Math.round(tPlug - tResume)} ms after the resume`);

    const learned = () => stage.fdb.learnedOn(SWITCH_PORT.b, tResume);
    const tick = () => p.status(`${tag} +${((now() - tPlug) / 1000).toFixed(1)} s after the join · switch → ${stage.fdb.current() ?? 'no port'}`);
    await until(() => learned() !== undefined, o.capMs, signal, tick);
    p.clear();
    const tJoin = stage.joinedAt(tPlug);
    // bridgewatch's own schedule runs on (as QEMU's would): read its count once it is over
    if (stage.daemon) await pause(announceOffsets(ANNOUNCE_DEFAULTS).at(-1)! + 500 - (now() - tPlug), signal);
    const base = await stage.result(tResume, tJoin, null); // QEMU's own RARPs: the daemon counts them
    ok = true;
    return {
      ...base,
      qemuVersion: source.version,
    };
  } finally {
    // QEMU cannot outlive the lab (it dies with its parent), so --keep keeps B's tap, not QEMU
    await stage.closeAfter(ok, o.keep && ok);
  }
}
