// A tap device held open through /dev/net/tun: what QEMU does for a guest NIC. Writing a frame
// to the fd makes it arrive on the tap's ingress, exactly as a guest's transmit does.
import { BridgewatchError } from '../errors.js';
import { c, errno, O_CLOEXEC, O_NONBLOCK, O_RDWR, strerror } from './libc.js';

const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const EAGAIN = 11;

export class Tap {
  readonly name: string;
  private fd: number;
  private readonly rbuf = Buffer.alloc(65536);

  /** Create (or attach to) tap `name` in the calling thread's network namespace. */
  constructor(name: string) {
    if (name.length > 15) throw new BridgewatchError('ECONFIG', `create tap ${name}: name longer than 15 bytes`);
    const fd = c.open('/dev/net/tun', O_RDWR | O_NONBLOCK | O_CLOEXEC) as number;
    if (fd < 0) throw new BridgewatchError('ENOTSUP', `open /dev/net/tun: ${strerror(errno())}`);
    const ifr = Buffer.alloc(40);
    ifr.write(name, 0, 'ascii');
    ifr.writeUInt16LE(IFF_TAP | IFF_NO_PI, 16);
    if ((c.ioctl(fd, TUNSETIFF, ifr) as number) < 0) {
      const e = errno();
      c.close(fd);
      throw new BridgewatchError('EKERNEL', `create tap ${name}: ${strerror(e)}`, e);
    }
    this.name = name;
    this.fd = fd;
  }

  /** Send a frame as the guest: it enters the host on the tap's ingress. */
  write(frame: Buffer): void {
    if ((c.write(this.fd, frame, frame.length) as number) < 0)
      throw new BridgewatchError('EKERNEL', `write frame to tap ${this.name}: ${strerror(errno())}`);
  }

  /** A frame the host sent to the guest, or null when none is waiting. */
  read(): Buffer | null {
    const n = c.read(this.fd, this.rbuf, this.rbuf.length) as number;
    if (n < 0) {
      const e = errno();
      if (e === EAGAIN) return null;
      throw new BridgewatchError('EKERNEL', `read frame from tap ${this.name}: ${strerror(e)}`);
    }
    return Buffer.from(this.rbuf.subarray(0, n));
  }

  /** Closing the last fd of a non-persistent tap deletes the device. */
  close(): void {
    if (this.fd >= 0) c.close(this.fd);
    this.fd = -1;
  }
}
