// One libpcap handle on one device: inbound frames only, the first `snaplen` bytes and the
// original length, kernel timestamps in ns, read without blocking on the owner's schedule.
import type koffi from 'koffi';
import { BridgewatchError } from '../errors.js';
import { c, errno, strerror } from '../sys/libc.js';
import { ERRNO } from '../sys/errno.js';
import {
  DLT_EN10MB,
  libpcap,
  PCAP_D_IN,
  PCAP_ERROR_IFACE_NOT_UP,
  PCAP_ERROR_NO_SUCH_DEVICE,
  PCAP_ERROR_PERM_DENIED,
  PCAP_TSTAMP_PRECISION_NANO,
} from './libpcap.js';

export const ENETDOWN = ERRNO.ENETDOWN;
const ENODEV = 19;
const EPERM = 1;
const SOL_SOCKET = 1;
const SO_ATTACH_FILTER = 26;
const PACKET_OUTGOING = 4;
const SKF_AD_PKTTYPE = 0xfffff000 + 4;

// Classic BPF on the packet socket: drop what the host sends out of the port. Attached with
// SO_ATTACH_FILTER ourselves: after pcap_setfilter("inbound") libpcap re-filters in user space
// the frames already in its ring, where "inbound" cannot be evaluated, and the port's first
// frame was lost (libpcap 1.10.3). pcap_setdirection() still covers the frames before it.
const INBOUND = (() => {
  const b = Buffer.alloc(4 * 8);
  const put = (i: number, code: number, jt: number, jf: number, k: number) => {
    b.writeUInt16LE(code, i * 8);
    b[i * 8 + 2] = jt;
    b[i * 8 + 3] = jf;
    b.writeUInt32LE(k >>> 0, i * 8 + 4);
  };
  put(0, 0x28, 0, 0, SKF_AD_PKTTYPE); // ldh [pkttype]
  put(1, 0x15, 1, 0, PACKET_OUTGOING); // jeq #outgoing, drop
  put(2, 0x06, 0, 0, 0x40000); // ret #262144 (the ring's snaplen cuts it)
  put(3, 0x06, 0, 0, 0); // ret #0
  return b;
})();

export interface CaptureOptions {
  snaplen: number;
  /** kernel ring per device; frames beyond it between two reads are dropped (and counted) */
  bufferBytes: number;
}

export class Capture {
  /** the stamp's second field is ns (else µs) */
  readonly nano: boolean;
  /** the packet socket, for readiness */
  readonly fd: number;
  private p: unknown;
  private lastDrops = 0;

  private constructor(
    readonly ifname: string,
    p: unknown,
    fd: number,
  ) {
    this.p = p;
    this.fd = fd;
    this.nano = libpcap().get_tstamp_precision(p) === PCAP_TSTAMP_PRECISION_NANO;
  }

  /** Open `ifname` in the calling thread's network namespace. ENETDOWN: the device is down. */
  static open(ifname: string, o: CaptureOptions): Capture {
    const l = libpcap();
    const what = `open capture on ${ifname}`;
    const errbuf = Buffer.alloc(512);
    const p = l.create(ifname, errbuf);
    if (!p) throw new BridgewatchError('EKERNEL', `${what}: ${cstr(errbuf)}`);
    try {
      // non-promiscuous: a tap hands us every frame its guest writes anyway
      l.set_snaplen(p, o.snaplen);
      l.set_promisc(p, 0);
      l.set_immediate_mode(p, 1);
      l.set_buffer_size(p, o.bufferBytes);
      l.set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
      const rc = l.activate(p) as number;
      if (rc < 0) throw activateError(what, rc, l.geterr(p) as string);
      const dlt = l.datalink(p) as number;
      if (dlt !== DLT_EN10MB) throw new BridgewatchError('ENOTSUP', `${what}: link type ${dlt} is not Ethernet`);
      if ((l.setdirection(p, PCAP_D_IN) as number) < 0) throw new BridgewatchError('EKERNEL', `${what}: set direction: ${l.geterr(p)}`);
      const fd = l.fileno(p) as number;
      if ((c.attach_filter(fd, SOL_SOCKET, SO_ATTACH_FILTER, { len: 4, filter: INBOUND }, 16) as number) < 0)
        throw new BridgewatchError('EKERNEL', `${what}: attach inbound filter: ${strerror(errno())}`);
      if ((l.setnonblock(p, 1, errbuf) as number) < 0) throw new BridgewatchError('EKERNEL', `${what}: set non-blocking: ${cstr(errbuf)}`);
      return new Capture(ifname, p, fd);
    } catch (e) {
      l.close(p);
      throw e;
    }
  }

  /** Hand up to `max` waiting frames to `handler`; returns how many. */
  read(max: number, handler: koffi.IKoffiRegisteredCallback): number {
    if (!this.p) return 0;
    const l = libpcap();
    const n = l.dispatch(this.p, max, handler, null) as number;
    if (n < 0) throw new BridgewatchError('EKERNEL', `read capture on ${this.ifname}: ${l.geterr(this.p)}`);
    return n;
  }

  /** Frames the kernel dropped because the ring was full, since open. */
  drops(): number {
    if (!this.p) return this.lastDrops;
    const ps = Buffer.alloc(16); // struct pcap_stat: ps_recv, ps_drop, ps_ifdrop
    if ((libpcap().stats(this.p, ps) as number) === 0) this.lastDrops = ps.readUInt32LE(4);
    return this.lastDrops; // a device gone: the last count read
  }

  /** Release the handle (and its socket); returns the final drop count. */
  close(): number {
    const d = this.drops();
    if (this.p) libpcap().close(this.p);
    this.p = undefined;
    return d;
  }
}

function cstr(b: Buffer): string {
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 ? b.length : end);
}

function activateError(what: string, rc: number, detail: string): BridgewatchError {
  const msg = `${what}: ${detail || libpcap().statustostr(rc)}`;
  if (rc === PCAP_ERROR_NO_SUCH_DEVICE) return new BridgewatchError('ENODEV', msg, ENODEV);
  if (rc === PCAP_ERROR_PERM_DENIED) return new BridgewatchError('EKERNEL', msg, EPERM);
  if (rc === PCAP_ERROR_IFACE_NOT_UP) return new BridgewatchError('EKERNEL', msg, ENETDOWN);
  return new BridgewatchError('EKERNEL', msg);
}
