// libbpf's own messages go where the daemon says (its log, at debug), not to stderr.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { libbpf, routeLibbpfPrint, type LibbpfLevel } from '../../src/bpf/libbpf.js';
import { missing } from '../helpers/kernel.js';
import { tempStateDir } from '../helpers/netns.js';

describe.skipIf(!!missing.bpf)('libbpf print routing', () => {
  afterAll(() => libbpf().set_print(null));

  it('formats libbpf\'s printf-style lines and hands them to the sink with their level', () => {
    const got: { level: LibbpfLevel; msg: string }[] = [];
    routeLibbpfPrint((level, msg) => got.push({ level, msg }));
    const junk = join(tempStateDir(), 'not-elf.bpf.o');
    writeFileSync(junk, 'this is not an ELF object');
    expect(libbpf().object_open_file(junk, null)).toBeNull();
    expect(got.length).toBeGreaterThan(0);
    // the path went through the format string's %s: vsnprintf ran on libbpf's va_list
    expect(got.map((g) => g.msg).join('\n')).toContain(junk);
    expect(got.every((g) => ['warn', 'info', 'debug'].includes(g.level) && !g.msg.endsWith('\n'))).toBe(true);
  });
});
