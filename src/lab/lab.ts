// `bridgewatch lab`: a live migration whose tap joins host B's bridge after the guest announced
// itself, run without and then with bridgewatch on host B, ending in a table. `--down` removes a
// lab left up by `--keep` (or by a crash).
import { existsSync, rmSync } from 'node:fs';
import { BridgewatchError } from '../errors.js';
import { LAB_OPTIONS } from '../lab-options.js';
import { DAEMON_PID, killDaemonNow, LAB_DIR, LISTEN, stopKeptDaemon } from './daemon.js';
import { Progress } from './progress.js';
import { findGuestImage, LAB_NICS, type GuestImage } from './guest-image.js';
import { linuxScenario } from './linux-scenario.js';
import { findExecutable, QEMU_BINARY, stopAllQemu } from './qemu.js';
import { qemuScenario } from './qemu-scenario.js';
import { renderTable, verdictLine, type LabSummary, type ScenarioResult } from './report.js';
import { guestScenario } from './scenario.js';
import type { ScenarioOptions } from './stage.js';
import { ALL_NS, assertNoLab, destroyTopology, existingNamespaces, GUEST_IP, GUEST_MAC, NS } from './topology.js';

type Flags = Record<string, string | boolean>;

const KNOWN = Object.keys(LAB_OPTIONS);
const GUESTS = ['sim', 'linux'] as const;

function intFlag(flags: Flags, name: string, def: number, min: number, max: number): number {
  const v = flags[name];
  if (v === undefined) return def;
  const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new BridgewatchError('ECONFIG', `lab --${name}: invalid value ${JSON.stringify(v)} (allowed: an integer from ${min} to ${max})`);
  return n;
}

function boolFlag(flags: Flags, name: string): boolean {
  const v = flags[name];
  if (v === undefined || v === false) return false;
  if (v === true) return true;
  throw new BridgewatchError('ECONFIG', `lab --${name}: takes no value, got ${JSON.stringify(v)}`);
}

function choiceFlag<T extends string>(flags: Flags, name: string, allowed: readonly T[], def: T): T {
  const v = flags[name];
  if (v === undefined) return def;
  if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
  throw new BridgewatchError('ECONFIG', `lab --${name}: invalid value ${JSON.stringify(v)} (allowed: ${allowed.join(', ')})`);
}

/** `bridgewatch lab --down`: the kept daemon, the namespaces and the state dir. */
async function down(out: NodeJS.WriteStream): Promise<number> {
  const daemon = await stopKeptDaemon();
  const present = existingNamespaces();
  const errors = destroyTopology();
  rmSync(LAB_DIR, { recursive: true, force: true });
  if (errors.length) throw new BridgewatchError('EKERNEL', `remove lab: ${errors.join('; ')}`);
  if (!daemon && !present.length) out.write('bridgewatch lab: no lab to remove\n');
  else out.write(`bridgewatch lab: removed ${[daemon ? 'the bridgewatch daemon' : '', present.length ? `namespaces ${present.join(', ')}` : ''].filter(Boolean).join(' and ')}\n`);
  return 0;
}

function preflight(qemu: boolean, image: GuestImage | string | null): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, taps, raw sockets)';
  for (const tool of ['ip', 'bridge']) if (!findExecutable(tool)) return `${tool} not found in PATH (Debian package iproute2)`;
  if (!findExecutable('curl')) return 'curl not found in PATH (Debian package curl): the lab reads bridgewatch\'s API with it inside host B\'s namespace';
  if (qemu && !findExecutable(QEMU_BINARY)) return `${QEMU_BINARY} not found in PATH: install Debian's qemu-system-x86 (apt-get install qemu-system-x86, or scripts/setup.sh --with-qemu)`;
  if (typeof image === 'string') return image;
  return null;
}

const SIM_RUNS = [{ bridgewatch: false, tapOnTime: false }, { bridgewatch: true, tapOnTime: false }];
const LINUX_RUNS = [
  { label: 'tap on time', bridgewatch: false, tapOnTime: true },
  { label: 'late tap, without bridgewatch', bridgewatch: false, tapOnTime: false },
  { label: 'late tap, with bridgewatch', bridgewatch: true, tapOnTime: false },
];

export async function runLab(flags: Flags): Promise<number> {
  for (const f of Object.keys(flags)) if (!KNOWN.includes(f)) throw new BridgewatchError('ECONFIG', `lab --${f}: unknown option (allowed: ${KNOWN.map((k) => `--${k}`).join(', ')})`);
  const json = boolFlag(flags, 'json');
  const out = json ? process.stderr : process.stdout;
  if (boolFlag(flags, 'down')) return down(out);
  const qemu = boolFlag(flags, 'qemu');
  const linux = choiceFlag(flags, 'guest', GUESTS, 'sim') === 'linux';
  if (linux && qemu) throw new BridgewatchError('ECONFIG', 'lab --qemu with --guest linux: pick one (--guest linux runs the Linux guest in QEMU)');
  if (!linux && flags.nic !== undefined) throw new BridgewatchError('ECONFIG', 'lab --nic: only with --guest linux');
  const nic = choiceFlag(flags, 'nic', LAB_NICS, 'e1000');
  const keep = boolFlag(flags, 'keep');
  // a real guest: the late join and ping rate of issue J's report
  const lateMs = intFlag(flags, 'late-ms', linux ? 1200 : 1000, 0, 60_000);
  const intervalMs = intFlag(flags, 'interval-ms', linux ? 200 : 1000, 10, 5000);
  const capS = intFlag(flags, 'cap-s', qemu ? 15 : 90, 1, 3600);

  const image = linux ? findGuestImage() : null;
  const missing = preflight(qemu || linux, image);
  if (missing) {
    console.error(`bridgewatch: lab: ${missing}`);
    return 2;
  }
  assertNoLab();
  if (existsSync(DAEMON_PID)) throw new BridgewatchError('ESTATE', `create lab: ${DAEMON_PID} exists (a kept lab or a leftover); remove it with: bridgewatch lab --down`);

  const progress = new Progress(out);
  const ac = new AbortController();
  let caught: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (caught) {
      // a second Ctrl-C: no more waiting, remove what we can right now
      killDaemonNow();
      destroyTopology();
      rmSync(LAB_DIR, { recursive: true, force: true });
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    caught = sig;
    progress.say(`bridgewatch lab: ${sig}, removing the lab`);
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  progress.say(
    `bridgewatch lab: a live migration whose tap joins host B's bridge ${lateMs} ms after the guest resumed, ` +
      `so the guest's own RARP burst (0-800 ms) is lost, as in Red Hat bug 719294.\n` +
      (qemu
        ? `Two real QEMU processes; measured: when the switch learns that the guest is on host B. Without bridgewatch, then with it.`
        : linux
          ? `A real Linux guest (${nic}) migrated between two QEMU processes (TCG), pinged from a client: tap on time, then late without and with bridgewatch; a late run without it takes up to ${capS} s.`
          : `A simulated guest, pinged from a client; real ARP and FDB timers: the run without bridgewatch takes up to ${capS} s.`),
  );
  let kept = false;
  const summary: LabSummary = { mode: qemu ? 'qemu' : linux ? 'linux' : 'guest', mac: GUEST_MAC, ip: GUEST_IP, lateMs, intervalMs: qemu ? null : intervalMs, capSeconds: capS, scenarios: [] };
  if (linux) Object.assign(summary, { nic, kernelVersion: (image as GuestImage).kernelVersion });
  try {
    for (const run of linux ? LINUX_RUNS : SIM_RUNS) {
      const { bridgewatch } = run;
      const o: ScenarioOptions = { ...run, lateMs, capMs: capS * 1000, intervalMs, keep: keep && bridgewatch, signal: ac.signal, progress };
      let r: ScenarioResult;
      if (linux) {
        const q = await linuxScenario({ ...o, nic, image: image as GuestImage, tapOnTime: run.tapOnTime });
        summary.qemuVersion = q.qemuVersion;
        r = q;
      } else if (qemu) {
        const q = await qemuScenario(o);
        summary.qemuVersion = q.qemuVersion;
        r = q;
      } else r = await guestScenario(o);
      summary.scenarios.push(r);
    }
    kept = keep;
  } catch (e) {
    if (caught) return caught === 'SIGINT' ? 130 : 143;
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stopAllQemu();
    if (!kept) rmSync(LAB_DIR, { recursive: true, force: true });
    progress.clear();
  }

  out.write(`\n${renderTable(summary)}\n\n${verdictLine(summary)}\n`);
  if (keep) {
    out.write(
      `\nThe lab is still up (namespaces ${ALL_NS.join(', ')}), bridgewatch serving in ${NS.b}:\n` +
        `  ip netns exec ${NS.b} curl -s ${LISTEN}/metrics\n` +
        `  ip netns exec ${NS.b} curl -s ${LISTEN}/api/v1/ports\n` +
        `Remove it with: bridgewatch lab --down\n`,
    );
  }
  if (json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  return 0;
}
