// The contract exists once: src/bpf/contract.gen.ts is what scripts/gen-contract.mjs makes of the
// built object's BTF, and an object built from a drifted header is refused with the enum members
// (and struct fields) that moved named.
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BridgewatchError } from '../../src/errors.js';
import { BpfCollection } from '../../src/bpf/loader.js';
import { ENUM_LAYOUTS, enumDiffs, KINDS, STATS } from '../../src/bpf/abi.js';
import { BPF_OBJECT, PACKAGE_ROOT } from '../../src/paths.js';
import { findExecutable } from '../../src/lab/qemu.js';
import { requires } from '../helpers/kernel.js';
import { tempStateDir } from '../helpers/netns.js';

const tools = ['clang', 'bpftool'].filter((t) => !findExecutable(t));
const gen = (object: string, out: string) => execFileSync(process.execPath, [join(PACKAGE_ROOT, 'scripts/gen-contract.mjs'), object, out], { stdio: 'pipe' });

describe('the kernel/user contract, generated from BTF', () => {
  it('src/bpf/contract.gen.ts is current: the generator makes exactly it from the built object', (ctx) => {
    if (tools.includes('bpftool')) ctx.skip('bpftool not in PATH (scripts/setup.sh installs it)');
    const out = join(tempStateDir(), 'contract.gen.ts');
    gen(BPF_OBJECT, out);
    const committed = readFileSync(join(PACKAGE_ROOT, 'src/bpf/contract.gen.ts'), 'utf8');
    // the header line names the object it was made from
    const body = (s: string) => s.split('\n').slice(1).join('\n');
    expect(body(readFileSync(out, 'utf8')), 'edit bpf/bridgewatch.h, then npm run build:bpf, and commit the result').toBe(body(committed));
  });

  it('user space follows the enums: kinds and counters in the kernel\'s order', () => {
    expect(KINDS).toEqual(['other', 'rarp', 'garp', 'na', 'legacy']);
    expect(STATS[2]).toBe('bad_source');
    const stat = ENUM_LAYOUTS.find((e) => e.name === 'bw_stat')!;
    expect(enumDiffs(stat, new Map(Object.entries(stat.values)))).toEqual([]);
    expect(enumDiffs(stat, undefined)).toEqual(['enum bw_stat: missing from the BPF object']);
  });

  it('refuses an object whose enum moved, naming the members; the generator refuses a sparse indexing enum', (ctx) => {
    requires(ctx, 'bpf');
    if (tools.length) ctx.skip(`${tools.join(', ')} not in PATH: cannot build a drifted object`);
    const dir = tempStateDir();
    cpSync(join(PACKAGE_ROOT, 'bpf'), join(dir, 'bpf'), { recursive: true });
    const h = join(dir, 'bpf/bridgewatch.h');
    const orig = readFileSync(h, 'utf8');
    // swapped: a metric would silently be labelled with the other counter's name
    const drifted = orig.replace('BW_STAT_NEW_MACS = 1,', 'BW_STAT_NEW_MACS = 2,').replace('BW_STAT_BAD_SOURCE = 2,', 'BW_STAT_BAD_SOURCE = 1,');
    expect(drifted).not.toBe(orig);
    writeFileSync(h, drifted);
    execFileSync('bash', [join(dir, 'bpf/build.sh'), join(dir, 'out')], { stdio: 'pipe' });
    const path = join(dir, 'out/bridgewatch.bpf.o');
    expect(() => BpfCollection.load({ objectPath: path, stateDir: dir })).toThrow(
      new BridgewatchError(
        'ELAYOUT',
        `check layout of ${path}: enum bw_stat: BW_STAT_NEW_MACS = 2, contract says 1; enum bw_stat: BW_STAT_BAD_SOURCE = 1, contract says 2`,
      ),
    );

    writeFileSync(h, orig.replace('BW_STAT_SETTLED = 8,', 'BW_STAT_SETTLED = 12,'));
    execFileSync('bash', [join(dir, 'bpf/build.sh'), join(dir, 'sparse')], { stdio: 'pipe' });
    let err = '';
    try {
      gen(join(dir, 'sparse/bridgewatch.bpf.o'), join(dir, 'x.ts'));
    } catch (e) {
      err = String((e as { stderr?: Buffer }).stderr);
    }
    expect(err).toMatch(/gen-contract: enum bw_stat: BW_STAT_SETTLED = 12, but an indexing enum must count 0, 1, 2, \.\.\. \(8 expected\)/);
  });
});
