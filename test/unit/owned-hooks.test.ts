// The clsact ownership journal in --state-dir: what a crashed run leaves is what the next start
// reads back, whatever point the crash hit, in the old format too; it stays compact.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OWNED_FILE, OwnedHooks, parseOwned } from '../../src/bpf/owned-hooks.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'bwt-owned-'));
  dirs.push(d);
  return d;
}
const journal = (dir: string) => readFileSync(join(dir, OWNED_FILE), 'utf8');
const members = (h: OwnedHooks, candidates: number[]) => candidates.filter((i) => h.has(i));

describe('OwnedHooks', () => {
  it('records each change as it happens: a run that dies without close() is read back by the next', () => {
    const dir = stateDir();
    const a = new OwnedHooks(dir);
    a.mark(7, true);
    a.mark(8, true);
    a.mark(7, false);
    a.mark(9, true);
    expect(journal(dir)).toBe('+7\n+8\n-7\n+9\n'); // one line per change, nothing rewritten
    // no close(): as after SIGKILL
    const b = new OwnedHooks(dir);
    expect(members(b, [7, 8, 9])).toEqual([8, 9]);
    expect(journal(dir)).toBe('+8\n+9\n'); // compacted on open
  });

  it('ignores a torn last line (a crash in the middle of a write)', () => {
    const dir = stateDir();
    writeFileSync(join(dir, OWNED_FILE), '+3\n+4\n-3\n+1');
    expect([...parseOwned(readFileSync(join(dir, OWNED_FILE), 'utf8'))]).toEqual([4, 1]);
    writeFileSync(join(dir, OWNED_FILE), '+3\n+4\n-');
    expect(members(new OwnedHooks(dir), [3, 4])).toEqual([3, 4]);
  });

  it('reads the JSON array an older version wrote, then keeps only the journal', () => {
    const dir = stateDir();
    writeFileSync(join(dir, 'clsact-owned.json'), JSON.stringify([12, 'x', 13]));
    const h = new OwnedHooks(dir);
    expect(members(h, [12, 13])).toEqual([12, 13]);
    expect(h.size).toBe(2);
    expect(existsSync(join(dir, 'clsact-owned.json'))).toBe(false);
    expect(journal(dir)).toBe('+12\n+13\n');
  });

  it('close() leaves one line per hook still ours, and no file when none is', () => {
    const dir = stateDir();
    const h = new OwnedHooks(dir);
    h.mark(5, true);
    h.mark(6, true);
    h.mark(5, false);
    h.close();
    expect(journal(dir)).toBe('+6\n');
    const again = new OwnedHooks(dir);
    again.mark(6, false);
    again.close();
    expect(existsSync(join(dir, OWNED_FILE))).toBe(false);
  });

  it('stays small over a long run of ports coming and going', () => {
    const dir = stateDir();
    const h = new OwnedHooks(dir);
    h.mark(1, true);
    for (let i = 100; i < 5100; i++) {
      h.mark(i, true);
      h.mark(i, false);
    }
    expect(journal(dir).split('\n').filter(Boolean).length).toBeLessThanOrEqual(1025);
    expect(members(new OwnedHooks(dir), [1, 100, 5099])).toEqual([1]);
  });

  it('creates the state dir when the first hook is recorded', () => {
    const dir = join(stateDir(), 'run', 'bridgewatch');
    const h = new OwnedHooks(dir);
    expect(existsSync(dir)).toBe(false); // reading makes nothing
    h.mark(2, true);
    expect(journal(dir)).toBe('+2\n');
  });
});
