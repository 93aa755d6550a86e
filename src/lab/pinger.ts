// The client's continuous ping, in Node so the lab needs no iputils and gets exact times: a raw
// ICMP socket opened inside the client's namespace (a socket stays in the namespace it was
// created in), an echo request every interval, replies read every few ms.
import koffi from 'koffi';
import { BridgewatchError } from '../errors.js';
import { c, errno, strerror } from '../sys/libc.js';
import { inNetns } from '../sys/netns.js';
import { ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, inetChecksum, ipv4Bytes, IPPROTO_ICMP } from './inet.js';

const recv = koffi.load('libc.so.6').func('long recv(int fd, void *buf, size_t len, int flags)');
const AF_INET = 2;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const PAYLOAD = 56; // iputils' default
const READ_MS = 2;

const now = (): number => performance.now();

export interface PingOptions {
  ns: string;
  target: string;
  intervalMs: number;
  /** a reply later than this counts as lost (ping -W) */
  timeoutMs: number;
  /** ICMP echo identifier; by default from the pid (two pingers at once need two) */
  id?: number;
}

export interface PingSummary {
  sent: number;
  /** no reply within timeoutMs */
  lost: number;
  /** the longest time between two consecutive replies, ms (the current silence included) */
  outageMs: number;
}

export class Pinger {
  /** performance.now() of each echo request, by sequence number */
  readonly sentAt: number[] = [];
  /** performance.now() of each reply, in arrival order */
  readonly replies: number[] = [];
  private readonly replyOf = new Map<number, number>();
  private fd = -1;
  private sender: NodeJS.Timeout | undefined;
  private reader: NodeJS.Timeout | undefined;
  private readonly id: number;
  private readonly dst: Buffer;
  private readonly rbuf = Buffer.alloc(2048);

  constructor(readonly o: PingOptions) {
    this.id = (o.id ?? process.pid) & 0xffff;
    const a = Buffer.alloc(16); // struct sockaddr_in
    a.writeUInt16LE(AF_INET, 0);
    ipv4Bytes(o.target).copy(a, 4);
    this.dst = a;
  }

  start(): void {
    const fd = inNetns(this.o.ns, () => c.socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP) as number);
    if (fd < 0) throw new BridgewatchError('EKERNEL', `open icmp socket in ${this.o.ns}: ${strerror(errno())}`);
    this.fd = fd;
    this.send();
    this.sender = setInterval(() => this.send(), this.o.intervalMs);
    this.reader = setInterval(() => this.read(), READ_MS);
  }

  /** Stop sending, give the last requests their timeout, then close. */
  async stop(): Promise<void> {
    clearInterval(this.sender);
    this.sender = undefined;
    if (this.fd >= 0) await new Promise((r) => setTimeout(r, this.o.timeoutMs));
    this.close();
  }

  close(): void {
    clearInterval(this.sender);
    clearInterval(this.reader);
    if (this.fd >= 0) c.close(this.fd);
    this.fd = -1;
  }

  get lastReplyAt(): number | undefined {
    return this.replies[this.replies.length - 1];
  }

  /**
   * The first reply of the unbroken run of replies that ends now (no gap longer than `gapMs`
   * between them, nor since the last), if that run started after `after`; else undefined.
   */
  steadySince(after: number, gapMs: number): number | undefined {
    const r = this.replies;
    if (!r.length || r[r.length - 1] <= after || now() - r[r.length - 1] > gapMs) return undefined;
    let i = r.length - 1;
    while (i > 0 && r[i - 1] > after && r[i] - r[i - 1] <= gapMs) i--;
    return r[i];
  }

  /** Replies received after `t`. */
  repliesAfter(t: number): number {
    let n = 0;
    for (let i = this.replies.length - 1; i >= 0 && this.replies[i] > t; i--) n++;
    return n;
  }

  /** Requests sent in [from, to) that got no reply within the timeout (so far). */
  lostBetween(from: number, to = Infinity): number {
    let n = 0;
    this.sentAt.forEach((t, seq) => {
      if (t < from || t >= to || now() - t < this.o.timeoutMs) return;
      const r = this.replyOf.get(seq);
      if (r === undefined || r - t > this.o.timeoutMs) n++;
    });
    return n;
  }

  summary(): PingSummary {
    let outage = 0;
    for (let i = 1; i < this.replies.length; i++) outage = Math.max(outage, this.replies[i] - this.replies[i - 1]);
    if (this.lastReplyAt !== undefined) outage = Math.max(outage, (this.fd >= 0 ? now() : this.stoppedAt()) - this.lastReplyAt);
    return { sent: this.sentAt.length, lost: this.lostBetween(0), outageMs: outage };
  }

  // after stop(): silence runs until the last request's timeout, not until whenever we ask
  // (an answered last request ends the silence with its reply: no trailing silence at all)
  private stoppedAt(): number {
    const seq = this.sentAt.length - 1;
    if (seq < 0) return 0;
    return this.replyOf.has(seq) ? (this.lastReplyAt ?? 0) : this.sentAt[seq] + this.o.timeoutMs;
  }

  private send(): void {
    if (this.fd < 0) return;
    const seq = this.sentAt.length;
    const icmp = Buffer.alloc(8 + PAYLOAD);
    icmp[0] = ICMP_ECHO_REQUEST;
    icmp.writeUInt16BE(this.id, 4);
    icmp.writeUInt16BE(seq & 0xffff, 6);
    for (let i = 8; i < icmp.length; i++) icmp[i] = i;
    icmp.writeUInt16BE(inetChecksum(icmp), 2);
    this.sentAt.push(now());
    // a failed send (neighbour FAILED, no buffer) is a lost ping, as for ping(8)
    c.sendto(this.fd, icmp, icmp.length, 0, this.dst, this.dst.length);
  }

  private read(): void {
    for (;;) {
      if (this.fd < 0) return;
      const n = recv(this.fd, this.rbuf, this.rbuf.length, 0) as number;
      if (n < 0) return; // EAGAIN: nothing waiting (errors are not reported on unconnected raw sockets)
      const t = now();
      const ihl = (this.rbuf[0] & 0x0f) * 4;
      if (n < ihl + 8 || !this.rbuf.subarray(12, 16).equals(this.dst.subarray(4, 8))) continue;
      const icmp = this.rbuf.subarray(ihl, n);
      if (icmp[0] !== ICMP_ECHO_REPLY || icmp.readUInt16BE(4) !== this.id) continue;
      const seq = this.matchSeq(icmp.readUInt16BE(6));
      if (seq === undefined || this.replyOf.has(seq)) continue; // duplicate
      this.replyOf.set(seq, t);
      this.replies.push(t);
    }
  }

  // the wire carries 16 bits; take the most recent request with them
  private matchSeq(seq16: number): number | undefined {
    for (let s = this.sentAt.length - 1; s >= 0; s--) if ((s & 0xffff) === seq16) return s;
    return undefined;
  }
}
