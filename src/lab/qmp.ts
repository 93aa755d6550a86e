// A QMP (QEMU Machine Protocol) client over a unix socket: the greeting, qmp_capabilities, then
// commands matched to their replies by id, and events kept with the time we read them.
import { createConnection, type Socket } from 'node:net';
import { BridgewatchError } from '../errors.js';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  /** QEMU's wall-clock time of the event */
  timestamp: { seconds: number; microseconds: number };
  /** process.hrtime.bigint() when we read it */
  receivedNs: bigint;
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** A QMP client: greeting, qmp_capabilities, then commands matched to replies by id. */
export class QmpClient {
  readonly events: QmpEvent[] = [];
  greeting: Record<string, unknown> | null = null;
  private sock: Socket | null = null;
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly waiters = new Set<() => void>();
  private greeted: ((g: Record<string, unknown>) => void) | null = null;

  constructor(
    readonly path: string,
    readonly label = path,
  ) {}

  /** Connect once (no retry) and negotiate capabilities. */
  async connect(timeoutMs = 5000): Promise<void> {
    const sock = createConnection(this.path);
    this.sock = sock;
    sock.setEncoding('utf8');
    const greeting = new Promise<Record<string, unknown>>((resolve) => (this.greeted = resolve));
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', () => undefined); // reported through close
    sock.on('close', () => this.failAll(new BridgewatchError('EKERNEL', `qmp ${this.label}: connection closed`)));
    const timer = setTimeout(() => sock.destroy(), timeoutMs);
    try {
      this.greeting = await Promise.race([
        greeting,
        new Promise<never>((_, reject) => sock.once('close', () => reject(new BridgewatchError('EKERNEL', `qmp ${this.label}: closed before the greeting`)))),
      ]);
    } finally {
      clearTimeout(timer);
    }
    await this.execute('qmp_capabilities');
  }

  /** Run a command; resolves with its `return`, rejects with QEMU's error class and text. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    const sock = this.sock;
    if (!sock || sock.destroyed) return Promise.reject(new BridgewatchError('ESTATE', `qmp ${this.label} ${command}: not connected`));
    const id = String(this.nextId++);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new BridgewatchError('EKERNEL', `qmp ${this.label} ${command}: no reply in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      sock.write(JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + '\n');
    });
  }

  /** The first event named `name` (already received or still to come) matching `pred`. */
  async waitForEvent(name: string, pred: (e: QmpEvent) => boolean = () => true, timeoutMs = 10_000): Promise<QmpEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.find((e) => e.event === name && pred(e));
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) throw new BridgewatchError('EKERNEL', `qmp ${this.label}: no ${name} event in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, left);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.waiters.add(done);
      });
    }
  }

  close(): void {
    this.sock?.destroy();
    this.sock = null;
    this.failAll(new BridgewatchError('ESTATE', `qmp ${this.label}: closed`));
  }

  private onData(d: string): void {
    this.buf += d;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) this.onMessage(JSON.parse(line) as Record<string, unknown>);
    }
  }

  private onMessage(m: Record<string, unknown>): void {
    if ('QMP' in m) {
      this.greeted?.(m);
      this.greeted = null;
    } else if ('event' in m) {
      this.events.push({ ...(m as Omit<QmpEvent, 'receivedNs'>), receivedNs: process.hrtime.bigint() });
      for (const w of [...this.waiters]) w();
      this.waiters.clear();
    } else if (typeof m.id === 'string' && this.pending.has(m.id)) {
      const p = this.pending.get(m.id)!;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if ('error' in m) {
        const e = m.error as { class?: string; desc?: string };
        p.reject(new BridgewatchError('EKERNEL', `qmp ${this.label} ${p.command}: ${e.class ?? 'Error'}: ${e.desc ?? JSON.stringify(e)}`));
      } else p.resolve(m.return);
    }
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const w of [...this.waiters]) w();
    this.waiters.clear();
  }
}
