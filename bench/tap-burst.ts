// "Another process" for bench/attach.ts: creates taps the way libvirt does (TUNSETIFF on
// /dev/net/tun, then SIOCSIFFLAGS up), holds their fds like QEMU, writes guest frames into them,
// and closes them (a non-persistent tap dies with its last fd). Run it inside the bench's netns
// (`ip netns exec`); it takes one JSON command per stdin line and answers one JSON line each.
//   {"cmd":"create","n":200,"prefix":"tapq"} -> {"startNs":"…","ms":12.3}   (CLOCK_MONOTONIC)
//   {"cmd":"frames","macsPerTap":10}         -> {"frames":10000}
//   {"cmd":"close"}                           -> {"ms":4.5}
import { createInterface } from 'node:readline';
import { c, errno, strerror } from '../src/sys/libc.js';
import { Tap } from '../src/sys/tun.js';

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 1;

const ctl = c.socket(AF_INET, SOCK_DGRAM, 0) as number;
if (ctl < 0) throw new Error(`socket: ${strerror(errno())}`);

function setUp(name: string): void {
  const ifr = Buffer.alloc(40);
  ifr.write(name, 0, 'ascii');
  if ((c.ioctl(ctl, SIOCGIFFLAGS, ifr) as number) < 0) throw new Error(`get flags of ${name}: ${strerror(errno())}`);
  ifr.writeUInt16LE(ifr.readUInt16LE(16) | IFF_UP, 16);
  if ((c.ioctl(ctl, SIOCSIFFLAGS, ifr) as number) < 0) throw new Error(`set ${name} up: ${strerror(errno())}`);
}

/** A 60-byte IPv4 broadcast from `mac`: a guest's ordinary first frame. */
function frame(mac: Buffer): Buffer {
  const f = Buffer.alloc(60);
  f.fill(0xff, 0, 6);
  mac.copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  return f;
}

let taps: Tap[] = [];

function create(n: number, prefix: string): { startNs: string; ms: number } {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const tap = new Tap(`${prefix}${i}`);
    taps.push(tap);
    setUp(tap.name);
  }
  return { startNs: String(t0), ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

function frames(macsPerTap: number): { frames: number } {
  let sent = 0;
  taps.forEach((tap, t) => {
    for (let m = 0; m < macsPerTap; m++) {
      // 52:54:00 (QEMU's prefix), then tap and MAC numbers: unique per {tap, MAC}
      const mac = Buffer.from([0x52, 0x54, 0x00, (t >> 8) & 0xff, t & 0xff, m & 0xff]);
      tap.write(frame(mac));
      sent++;
    }
  });
  return { frames: sent };
}

function close(): { ms: number } {
  const t0 = process.hrtime.bigint();
  for (const tap of taps) tap.close();
  taps = [];
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let reply: object;
  try {
    const m = JSON.parse(line) as { cmd: string; n?: number; prefix?: string; macsPerTap?: number };
    if (m.cmd === 'create') reply = create(m.n ?? 1, m.prefix ?? 'tapq');
    else if (m.cmd === 'frames') reply = frames(m.macsPerTap ?? 1);
    else if (m.cmd === 'close') reply = close();
    else throw new Error(`unknown command ${m.cmd}`);
  } catch (e) {
    reply = { error: (e as Error).message };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
});
rl.on('close', () => {
  close();
  process.exit(0);
});
