// Live progress while the lab waits on real timers: one status line rewritten in place on a
// terminal; on a pipe or a log, plain lines (events, and the status every few seconds).
const PLAIN_STATUS_EVERY_MS = 5000;

export class Progress {
  private readonly tty: boolean;
  private shown = false;
  private lastPlain = 0;

  constructor(private readonly out: NodeJS.WriteStream) {
    this.tty = !!out.isTTY && process.env.TERM !== 'dumb';
  }

  /** A line that stays. */
  say(line: string): void {
    this.clear();
    this.out.write(line + '\n');
  }

  /** The current state; replaced by the next call on a terminal, rate-limited otherwise. */
  status(line: string): void {
    if (this.tty) {
      const width = (this.out.columns || 100) - 1;
      this.out.write('\r\x1b[K' + line.slice(0, width));
      this.shown = true;
      return;
    }
    const t = performance.now();
    if (t - this.lastPlain < PLAIN_STATUS_EVERY_MS) return;
    this.lastPlain = t;
    this.out.write(line + '\n');
  }

  clear(): void {
    if (this.shown) this.out.write('\r\x1b[K');
    this.shown = false;
  }
}
