// The network namespace a port was attached in. libpcap opens a device by name in the calling
// thread's namespace, but a device that was down at attach (libpcap refuses those) is opened
// later from a timer, wherever the main thread is then. Devices are looked up by ifindex through
// a socket made in their namespace, so checking one never means entering it.
import { readlinkSync } from 'node:fs';
import { BridgewatchError } from '../errors.js';
import { c, CLONE_NEWNET, errno, O_CLOEXEC, strerror } from '../sys/libc.js';

const SELF = '/proc/thread-self/ns/net';
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SIOCGIFNAME = 0x8910;
const SIOCGIFFLAGS = 0x8913;
const IFF_UP = 1;

export interface LinkInfo {
  name: string;
  up: boolean;
}

export class Netns {
  /** e.g. net:[4026531840] */
  readonly id: string;
  refs = 0;
  private fd: number;
  private sock: number;

  /** The calling thread's namespace. */
  constructor() {
    this.id = readlinkSync(SELF);
    this.fd = c.open(SELF, O_CLOEXEC) as number;
    if (this.fd < 0) throw new BridgewatchError('EKERNEL', `open ${SELF}: ${strerror(errno())}`);
    this.sock = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number;
    if (this.sock < 0) {
      const e = errno();
      c.close(this.fd);
      throw new BridgewatchError('EKERNEL', `open device lookup socket: ${strerror(e)}`, e);
    }
  }

  /** Name and up flag of `ifindex` in this namespace; null when there is no such device. */
  link(ifindex: number): LinkInfo | null {
    const ifr = Buffer.alloc(40); // struct ifreq: name[16], then the union
    ifr.writeInt32LE(ifindex, 16);
    if ((c.ioctl(this.sock, SIOCGIFNAME, ifr) as number) < 0) return null;
    const end = ifr.indexOf(0);
    const name = ifr.toString('latin1', 0, end >= 0 && end < 16 ? end : 16);
    ifr.fill(0, 16);
    if ((c.ioctl(this.sock, SIOCGIFFLAGS, ifr) as number) < 0) return null;
    return { name, up: (ifr.readUInt16LE(16) & IFF_UP) !== 0 };
  }

  /** Run fn here; enters the namespace (CAP_SYS_ADMIN) only when the thread is elsewhere. */
  run<T>(fn: () => T): T {
    if (readlinkSync(SELF) === this.id) return fn();
    const home = c.open(SELF, O_CLOEXEC) as number;
    if (home < 0) throw new BridgewatchError('EKERNEL', `open ${SELF}: ${strerror(errno())}`);
    if ((c.setns(this.fd, CLONE_NEWNET) as number) < 0) {
      const e = errno();
      c.close(home);
      throw new BridgewatchError('EKERNEL', `enter netns ${this.id}: ${strerror(e)}`, e);
    }
    try {
      return fn();
    } finally {
      const rc = c.setns(home, CLONE_NEWNET) as number;
      c.close(home);
      if (rc < 0) throw new BridgewatchError('EKERNEL', `return from netns ${this.id}: ${strerror(errno())}`);
    }
  }

  close(): void {
    if (this.sock >= 0) c.close(this.sock);
    if (this.fd >= 0) c.close(this.fd);
    this.sock = this.fd = -1;
  }
}

/** One Netns per namespace, shared by the ports attached there. */
export class NetnsSet {
  private readonly all = new Map<string, Netns>();

  /** The calling thread's namespace, with one more reference. */
  acquire(): Netns {
    const id = readlinkSync(SELF);
    let ns = this.all.get(id);
    if (!ns) this.all.set(id, (ns = new Netns()));
    ns.refs++;
    return ns;
  }

  release(ns: Netns): void {
    if (--ns.refs > 0) return;
    ns.close();
    this.all.delete(ns.id);
  }

  closeAll(): void {
    for (const ns of this.all.values()) ns.close();
    this.all.clear();
  }
}
