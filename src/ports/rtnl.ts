// One NETLINK_ROUTE socket subscribed to RTNLGRP_LINK, carrying both notifications and our
// dumps, in the order the kernel queued them. We frame messages ourselves instead of using the
// package's NetlinkSocket: its multipart grouping assumes nothing arrives between the parts of
// a dump, but notifications do, and it would then report the dump as broken.
import { formatMessage, parseMessage, Protocol, RawNetlinkSocket, type NetlinkMessage } from 'netlink';
import { BridgewatchError } from '../errors.js';
import { RTM_GETLINK } from './decode.js';
import { forceRcvbuf } from './rcvbuf.js';

const NLMSG_NOOP = 1;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP_INTR = 0x10;
const NLM_F_DUMP = 0x300;
const RTNLGRP_LINK = 1;
const IFLA_LINKINFO = 18;
const IFLA_EXT_MASK = 29;
const IFLA_INFO_KIND = 1;
const NLA_F_NESTED = 0x8000;
const RTEXT_FILTER_SKIP_STATS = 1 << 3;
const DUMP_TIMEOUT_MS = 10_000;

export interface RtnlHooks {
  /** a message that is not part of our dump's framing, or an entry of our dump */
  message(msg: NetlinkMessage, fromDump: boolean, tsNs: bigint): void;
  /** undecodable bytes: counted, never fatal */
  bad(cause: string): void;
  /** recvmsg failed (ENOBUFS: the kernel dropped notifications) or the socket died */
  error(err: Error & { errno?: number; code?: string; syscall?: string | null }): void;
}

export interface DumpRequest {
  family: number;
  /** only links of this IFLA_INFO_KIND (kernel-side filter) */
  kind?: string;
}

interface PendingDump {
  seq: number;
  interrupted: boolean;
  onDone: (interrupted: boolean) => void;
  resolve: () => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

function attr(type: number, data: Buffer): Buffer {
  const len = 4 + data.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  data.copy(out, 4);
  return out;
}

/** RTM_GETLINK dump request payload: ifinfomsg, skip stats, optional kind filter. */
export function getlinkRequest(req: DumpRequest): Buffer {
  const ifi = Buffer.alloc(16);
  ifi.writeUInt8(req.family, 0);
  const mask = Buffer.alloc(4);
  mask.writeUInt32LE(RTEXT_FILTER_SKIP_STATS);
  const parts = [ifi, attr(IFLA_EXT_MASK, mask)];
  if (req.kind) parts.push(attr(IFLA_LINKINFO | NLA_F_NESTED, attr(IFLA_INFO_KIND, Buffer.from(`${req.kind}\0`))));
  return Buffer.concat(parts);
}

export class RtnlLinkSocket {
  private sock: RawNetlinkSocket | null = null;
  private portId = 0;
  private seq = 1;
  private dumping: PendingDump | null = null;

  constructor(
    private readonly hooks: RtnlHooks,
    private readonly clock: () => bigint,
  ) {}

  /** Open in the calling thread's netns and subscribe; returns the receive buffer granted. */
  open(rcvbufBytes: number): number {
    const sock = new RawNetlinkSocket(Protocol.ROUTE);
    try {
      this.portId = sock.address().port;
      sock.on('message', (buf) => this.receive(buf));
      sock.on('truncatedMessage', () => this.hooks.bad('truncated datagram'));
      sock.on('error', (err) => this.hooks.error(err));
      if (!forceRcvbuf(this.portId, rcvbufBytes)) sock.setRecvBufferSize(rcvbufBytes);
      // subscribe before any dump: a change between the two is then seen at least once
      sock.addMembership(RTNLGRP_LINK);
      this.sock = sock;
      return sock.getRecvBufferSize();
    } catch (e) {
      sock.close();
      throw e;
    }
  }

  get isOpen(): boolean {
    return this.sock !== null;
  }

  /** Dump links; onDone runs in stream order, before any message queued after the dump. */
  dump(req: DumpRequest, onDone: (interrupted: boolean) => void = () => {}): Promise<void> {
    const sock = this.sock;
    if (!sock) return Promise.reject(new BridgewatchError('ESTATE', 'dump links: socket closed'));
    if (this.dumping) return Promise.reject(new BridgewatchError('ESTATE', 'dump links: a dump is already running'));
    const seq = this.seq++;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.finish(new BridgewatchError('EKERNEL', `dump links: no answer in ${DUMP_TIMEOUT_MS} ms`)), DUMP_TIMEOUT_MS);
      this.dumping = { seq, interrupted: false, onDone, resolve, reject, timer };
      const bufs = formatMessage({ type: RTM_GETLINK, flags: NLM_F_REQUEST | NLM_F_DUMP, seq, port: this.portId, data: getlinkRequest(req) });
      sock.send(bufs, { port: 0 }, (err) => {
        if (err && this.dumping?.seq === seq) this.finish(new BridgewatchError('EKERNEL', `dump links: ${err.message}`, err.errno));
      });
    });
  }

  close(): void {
    this.finish(new BridgewatchError('ESTATE', 'dump links: socket closed'));
    this.sock?.close();
    this.sock = null;
  }

  private finish(err?: Error): void {
    const d = this.dumping;
    if (!d) return;
    this.dumping = null;
    clearTimeout(d.timer);
    if (err) return d.reject(err);
    try {
      d.onDone(d.interrupted);
    } catch (e) {
      return d.reject(e as Error);
    }
    d.resolve();
  }

  private receive(buf: Buffer): void {
    const tsNs = this.clock();
    let rest = buf;
    while (rest.length > 0 && this.sock) {
      let msg: NetlinkMessage;
      let consumed: number;
      try {
        ({ x: msg, consumed } = parseMessage(rest));
      } catch (e) {
        // framing is lost for the rest of this datagram
        this.hooks.bad(`netlink header: ${(e as Error).message}`);
        return;
      }
      rest = rest.subarray((consumed + 3) & ~3);
      this.dispatch(msg, tsNs);
    }
  }

  private dispatch(msg: NetlinkMessage, tsNs: bigint): void {
    const d = this.dumping;
    const ours = d !== null && msg.seq === d.seq && msg.port === this.portId;
    if (ours && msg.type === NLMSG_DONE) {
      // DONE carries an int: a negative errno when the dump failed midway
      const rc = msg.data.length >= 4 ? msg.data.readInt32LE(0) : 0;
      if (rc < 0) return this.finish(new BridgewatchError('EKERNEL', `dump links: errno ${-rc}`, -rc));
      return this.finish();
    }
    if (msg.type === NLMSG_ERROR) {
      const errno = msg.data.length >= 4 ? -msg.data.readInt32LE(0) : 0;
      if (ours) return this.finish(new BridgewatchError('EKERNEL', `dump links: errno ${errno}`, errno));
      return this.hooks.bad(`unexpected NLMSG_ERROR (errno ${errno}, seq ${msg.seq})`);
    }
    if (msg.type === NLMSG_NOOP || msg.type === NLMSG_DONE) return this.hooks.bad(`unexpected control message ${msg.type}`);
    if (ours && msg.flags & NLM_F_DUMP_INTR) d.interrupted = true;
    this.hooks.message(msg, ours, tsNs);
  }
}
