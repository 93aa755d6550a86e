// Request/response over a NETLINK_ROUTE socket with no subscriptions: one request at a time,
// answered by its own messages (a reply, a dump, or an ack). Unlike the netlink package's
// request(), a kernel refusal keeps its errno (ENOENT for "no such entry" is an answer, not a failure).
import { formatMessage, parseMessage, Protocol, RawNetlinkSocket, type NetlinkMessage } from 'netlink';
import { BridgewatchError } from '../errors.js';
import { errnoName } from './errno.js';

const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_CREATE = 0x400;
const NLM_F_MULTI = 0x2;
const TIMEOUT_MS = 2000;

export class NetlinkRequestError extends BridgewatchError {
  constructor(what: string, errno: number) {
    super('EKERNEL', `${what}: ${errnoName(errno)}`, errno);
  }
}

interface Pending {
  seq: number;
  what: string;
  replies: NetlinkMessage[];
  resolve(m: NetlinkMessage[]): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class RtnlRequester {
  private sock: RawNetlinkSocket | null = null;
  private portId = 0;
  private seq = 1;
  private pending: Pending | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  /** Opens in the calling thread's network namespace. */
  open(): void {
    const sock = new RawNetlinkSocket(Protocol.ROUTE);
    this.portId = sock.address().port;
    sock.on('message', (buf) => this.receive(buf));
    sock.on('error', (err) => this.fail(new BridgewatchError('EKERNEL', `rtnetlink request: ${err.message}`)));
    sock.unref();
    this.sock = sock;
  }

  close(): void {
    this.fail(new BridgewatchError('ESTATE', 'rtnetlink request: socket closed'));
    this.sock?.close();
    this.sock = null;
  }

  /**
   * Send one message and resolve with the messages answering it (none for a bare ack). Requests
   * are serialized: the kernel answers in order, and one outstanding seq keeps matching trivial.
   */
  request(what: string, type: number, flags: number, data: Buffer): Promise<NetlinkMessage[]> {
    const run = () => this.send(what, type, flags, data);
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private send(what: string, type: number, flags: number, data: Buffer): Promise<NetlinkMessage[]> {
    const sock = this.sock;
    if (!sock) return Promise.reject(new BridgewatchError('ESTATE', `${what}: rtnetlink socket closed`));
    const seq = this.seq++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new BridgewatchError('EKERNEL', `${what}: no answer in ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
      this.pending = { seq, what, replies: [], resolve, reject, timer };
      sock.send(formatMessage({ type, flags: flags | NLM_F_REQUEST, seq, port: this.portId, data }), { port: 0 }, (err) => {
        if (err) this.fail(new BridgewatchError('EKERNEL', `${what}: ${err.message}`, err.errno));
      });
    });
  }

  private receive(buf: Buffer): void {
    let rest = buf;
    while (rest.length > 0) {
      let msg: NetlinkMessage;
      let consumed: number;
      try {
        ({ x: msg, consumed } = parseMessage(rest));
      } catch (e) {
        return this.fail(new BridgewatchError('EKERNEL', `rtnetlink request: bad answer: ${(e as Error).message}`));
      }
      rest = rest.subarray((consumed + 3) & ~3);
      const p = this.pending;
      if (!p || msg.seq !== p.seq) continue; // a late answer to a request that timed out
      if (msg.type === NLMSG_ERROR) {
        const errno = msg.data.length >= 4 ? -msg.data.readInt32LE(0) : 0;
        this.finish(errno ? new NetlinkRequestError(p.what, errno) : undefined);
      } else if (msg.type === NLMSG_DONE) {
        const rc = msg.data.length >= 4 ? msg.data.readInt32LE(0) : 0;
        this.finish(rc < 0 ? new NetlinkRequestError(p.what, -rc) : undefined);
      } else {
        p.replies.push(msg);
        // a single reply (no NLM_F_MULTI) ends a get unless an ack was asked for
        if (!(msg.flags & NLM_F_MULTI)) this.finish();
      }
    }
  }

  private finish(err?: Error): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(p.replies);
  }

  private fail(err: Error): void {
    this.finish(err);
  }
}
