// Follows rtnetlink link messages and reports VM ports: created (before they join a bridge,
// which is when announcements get lost), joined/left, bridge port state, carrier, rename,
// delete. Lifecycle: constructor stores deps; start() opens the socket in the calling thread's
// netns, subscribes, dumps, then follows; stop() closes it.
import { EventEmitter } from 'node:events';
import type { NetlinkMessage } from 'netlink';
import { BridgewatchError } from '../errors.js';
import { ERRNO } from '../sys/errno.js';
import { AF_BRIDGE, AF_UNSPEC, decodeLinkMessage } from './decode.js';
import { compileRules, type Matcher, type WatchRules } from './match.js';
import { RtnlLinkSocket } from './rtnl.js';
import { LinkTable, type ApplyContext, type TableEvent } from './table.js';
import type { BridgeInfo, PortWatcherEvents, WatchedLink, WatcherStats } from './types.js';

export interface WatchLogger {
  warn(msg: string): void;
  debug?(msg: string): void;
}

export interface PortWatcherDeps {
  rules: WatchRules;
  /** CLOCK_MONOTONIC ns, the clock of bpf_ktime_get_ns() */
  clock?: () => bigint;
  log?: WatchLogger;
  /** receive buffer for notification bursts (many VMs starting at once); default 4 MiB */
  rcvbufBytes?: number;
}

const RESYNC_RETRY_MS = 1000;

type Phase = 'idle' | 'starting' | 'running' | 'stopped';

export class PortWatcher extends EventEmitter<PortWatcherEvents> {
  readonly stats: WatcherStats = { messages: 0, badMessages: 0, resyncs: 0, socketErrors: 0, rcvbufBytes: 0 };
  private readonly matcher: Matcher;
  private readonly clock: () => bigint;
  private readonly log: WatchLogger | undefined;
  private readonly rcvbufBytes: number;
  private readonly table: LinkTable;
  private sock: RtnlLinkSocket | null = null;
  private phase: Phase = 'idle';
  /** set while dumping: where dump entries come from */
  private syncing: { initial: boolean } | null = null;
  private resyncWanted = false;
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(deps: PortWatcherDeps) {
    super();
    this.matcher = compileRules(deps.rules);
    this.clock = deps.clock ?? process.hrtime.bigint;
    this.log = deps.log;
    this.rcvbufBytes = deps.rcvbufBytes ?? 4 << 20;
    this.table = new LinkTable(this.matcher);
  }

  /** Attach listeners first: the initial dump is reported as 'created' with initial: true. */
  async start(): Promise<void> {
    if (this.phase === 'starting' || this.phase === 'running') throw new BridgewatchError('ESTATE', 'start port watcher: already started');
    this.phase = 'starting';
    this.table.clear();
    const sock = new RtnlLinkSocket(
      {
        message: (m, fromDump, tsNs) => this.onMessage(m, fromDump, tsNs),
        bad: (cause) => this.onBad(cause),
        error: (err) => this.onSocketError(err),
      },
      this.clock,
    );
    // synchronously, before any await: the socket belongs to the netns of the calling thread
    try {
      this.stats.rcvbufBytes = sock.open(this.rcvbufBytes);
    } catch (e) {
      this.phase = 'stopped';
      throw new BridgewatchError('EKERNEL', `start port watcher: open rtnetlink socket: ${(e as Error).message}`);
    }
    this.sock = sock;
    try {
      await this.sync(true);
    } catch (e) {
      if (this.isStopped()) throw new BridgewatchError('ESTATE', 'start port watcher: stopped while starting');
      this.stop();
      throw new BridgewatchError('EKERNEL', `start port watcher: ${(e as Error).message}`);
    }
    if (!this.isStopped()) this.phase = 'running';
  }

  /** A method, so type narrowing does not assume the phase survives an await. */
  private isStopped(): boolean {
    return this.phase === 'stopped';
  }

  stop(): void {
    if (this.phase === 'idle' || this.phase === 'stopped') return;
    this.phase = 'stopped';
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.sock?.close();
    this.sock = null;
  }

  /** Watched devices (bridges excluded), as of the last message applied. */
  links(): WatchedLink[] {
    return this.table.links();
  }

  link(ifindex: number): WatchedLink | undefined {
    return this.table.link(ifindex);
  }

  bridges(): BridgeInfo[] {
    return this.table.bridges();
  }

  /** Dump bridges, then all links, then bridge ports; repeat while an overrun asks for it. */
  private async sync(initial: boolean): Promise<void> {
    do {
      const sock = this.sock;
      if (!sock) return;
      if (!initial) this.stats.resyncs++;
      this.resyncWanted = false;
      this.syncing = { initial };
      this.table.epoch++;
      const wantAgain = (interrupted: boolean): void => {
        if (interrupted) this.resyncWanted = true;
      };
      try {
        // bridges first, so every port's master is known when the port is dumped
        await sock.dump({ family: AF_UNSPEC, kind: 'bridge' }, wantAgain);
        await sock.dump({ family: AF_UNSPEC }, (interrupted) => {
          wantAgain(interrupted);
          this.dispatch(this.table.reconcile({ tsNs: this.clock(), initial: false, resync: !initial }));
        });
        await sock.dump({ family: AF_BRIDGE }, wantAgain);
      } finally {
        this.syncing = null;
      }
      initial = false;
    } while (this.resyncWanted && this.sock);
  }

  private resync(): void {
    if (this.syncing || !this.sock || this.phase !== 'running') {
      this.resyncWanted = true;
      return;
    }
    this.sync(false).catch((e: Error) => {
      this.log?.warn(`resync port watcher: ${e.message}; retrying in ${RESYNC_RETRY_MS} ms`);
      if (this.phase === 'running') this.retryTimer = setTimeout(() => this.resync(), RESYNC_RETRY_MS);
    });
  }

  private onMessage(m: NetlinkMessage, fromDump: boolean, tsNs: bigint): void {
    let msg;
    try {
      msg = decodeLinkMessage(m.type, m.data);
    } catch (e) {
      return this.onBad(`link message type ${m.type}: ${(e as Error).message}`);
    }
    if (!msg) return this.onBad(`unexpected message type ${m.type}`);
    this.stats.messages++;
    const ctx: ApplyContext = {
      tsNs,
      initial: fromDump && this.syncing?.initial === true,
      resync: fromDump && this.syncing?.initial === false,
    };
    this.dispatch(this.table.apply(msg, ctx));
  }

  private onBad(cause: string): void {
    this.stats.badMessages++;
    this.log?.debug?.(`skip netlink message: ${cause}`);
  }

  private onSocketError(err: Error & { errno?: number; syscall?: string | null }): void {
    this.stats.socketErrors++;
    if (err.syscall === 'recvmsg') {
      // ENOBUFS: the kernel dropped notifications; anything else on recvmsg, same cure
      this.log?.warn(`read rtnetlink: ${err.errno === ERRNO.ENOBUFS ? 'overrun (ENOBUFS)' : err.message}; resyncing`);
      this.resync();
      return;
    }
    // a poll error: the package has closed the socket, which we cannot reopen in another netns
    const fatal = new BridgewatchError('EKERNEL', `watch ports: rtnetlink socket failed: ${err.message}`, err.errno);
    this.log?.warn(fatal.message);
    this.stop();
    if (this.listenerCount('error') > 0) this.emit('error', fatal);
  }

  private dispatch(events: TableEvent[]): void {
    for (const e of events) {
      if (e.name === 'port') this.emit('port', e.event);
      else if (e.name === 'bridge') this.emit('bridge', e.event);
      else this.emit('bridgeDeleted', e.event);
    }
  }
}
