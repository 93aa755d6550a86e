// One epoll set over every capture's packet socket: a read asks the kernel once which ports have
// frames (or an error) waiting, instead of a pcap_dispatch and its poll(2) per idle port.
import { BridgewatchError } from '../errors.js';
import { c, errno, strerror } from '../sys/libc.js';

const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLLIN = 0x001;
// struct epoll_event is packed on x86_64 (12 bytes), naturally aligned elsewhere (16)
const EV_SIZE = process.arch === 'x64' ? 12 : 16;
const EV_DATA = process.arch === 'x64' ? 4 : 8;

export class Readiness {
  private fd: number;
  private count = 0;
  private buf = Buffer.alloc(64 * EV_SIZE);

  constructor() {
    this.fd = c.epoll_create1(EPOLL_CLOEXEC) as number;
    if (this.fd < 0) throw new BridgewatchError('EKERNEL', `create epoll set: ${strerror(errno())}`);
  }

  add(fd: number): void {
    const ev = Buffer.alloc(EV_SIZE);
    ev.writeUInt32LE(EPOLLIN, 0); // errors and hangups are always reported
    ev.writeUInt32LE(fd, EV_DATA);
    if ((c.epoll_ctl(this.fd, EPOLL_CTL_ADD, fd, ev) as number) < 0) throw new BridgewatchError('EKERNEL', `watch capture fd ${fd}: ${strerror(errno())}`);
    this.count++;
    if (this.buf.length < this.count * EV_SIZE) this.buf = Buffer.alloc(2 * this.count * EV_SIZE);
  }

  /** Before the fd closes (closing would drop it from the set anyway). */
  remove(fd: number): void {
    if ((c.epoll_ctl(this.fd, EPOLL_CTL_DEL, fd, null) as number) === 0) this.count--;
  }

  /** The fds with something to read now, all of them: the buffer holds every registered fd. */
  ready(): Set<number> {
    const out = new Set<number>();
    if (!this.count) return out;
    const n = c.epoll_wait(this.fd, this.buf, this.buf.length / EV_SIZE, 0) as number;
    for (let i = 0; i < n; i++) out.add(this.buf.readUInt32LE(i * EV_SIZE + EV_DATA));
    return out;
  }

  close(): void {
    if (this.fd >= 0) c.close(this.fd);
    this.fd = -1;
    this.count = 0;
  }
}
