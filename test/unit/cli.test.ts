// The command line is strict: every word is a declared option of that command or the value of
// one, booleans never swallow the next word, and anything else exits 2 naming the word.
import { describe, expect, it } from 'vitest';
import { optionLines, optionSynopsis, parseOptions, type OptionDecls } from '../../src/args.js';
import { COMMANDS, parseCommandLine, runCli } from '../../src/cli.js';
import { OPTIONS } from '../../src/config.js';
import { BridgewatchError } from '../../src/errors.js';
import { LAB_OPTIONS } from '../../src/lab-options.js';

const DECLS: OptionDecls = {
  listen: { type: 'string', help: '' },
  'observe-uplinks': { type: 'boolean', help: '' },
  help: { type: 'boolean', short: 'h', help: '' },
};

/** The ECONFIG message parsing throws (fails the test when it parses). */
function usageError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BridgewatchError);
    expect((e as BridgewatchError).code).toBe('ECONFIG');
    return (e as Error).message;
  }
  throw new Error('expected a usage error');
}

describe('parseOptions', () => {
  it.each<[string[], Record<string, string | boolean>]>([
    [[], {}],
    [['--listen', '127.0.0.1:1'], { listen: '127.0.0.1:1' }],
    [['--listen=127.0.0.1:1'], { listen: '127.0.0.1:1' }],
    [['--listen='], { listen: '' }], // given, empty: the config check names it
    [['--listen', '-1'], { listen: '-1' }], // a value may start with one dash
    [['--listen=--x'], { listen: '--x' }],
    [['--observe-uplinks'], { 'observe-uplinks': true }],
    [['--observe-uplinks=true'], { 'observe-uplinks': true }],
    [['--observe-uplinks=false'], { 'observe-uplinks': false }],
    [['-h'], { help: true }],
    [['--observe-uplinks', '--listen', ':1', '--'], { 'observe-uplinks': true, listen: ':1' }],
  ])('%j', (argv, want) => {
    expect(parseOptions('run', argv, DECLS)).toEqual(want);
  });

  it.each<[string[], RegExp]>([
    [['--frobnicate', '1'], /^run --frobnicate: unknown option \(see bridgewatch run --help\)$/],
    [['--observe-uplink'], /^run --observe-uplink: unknown option/],
    [['-x'], /^run -x: unknown option/],
    [['extra'], /^run: unexpected argument "extra" \(see bridgewatch run --help\)$/],
    [['--listen', ':1', 'extra'], /^run: unexpected argument "extra"/],
    [['--', 'extra'], /^run: unexpected argument "extra"/],
    // the bug this parser replaces: "false" was ignored and the flag alone turned uplinks on
    [['--observe-uplinks', 'false'], /^run: unexpected argument "false"; --observe-uplinks takes no separate value: write --observe-uplinks=false /],
    [['--observe-uplinks', 'true'], /write --observe-uplinks=true/],
    [['--observe-uplinks=no'], /^run --observe-uplinks: takes no value, or =true \/ =false \(got "no"\)$/],
    [['--observe-uplinks='], /^run --observe-uplinks: takes no value, or =true \/ =false \(got ""\)$/],
    [['--listen'], /^run --listen: needs a value$/],
    [['--listen', '--observe-uplinks'], /^run --listen: needs a value$/],
    [['--listen', 'a', '--listen=b'], /^run --listen: given twice$/],
    [['--observe-uplinks', '--observe-uplinks'], /^run --observe-uplinks: given twice$/],
    [['--toString'], /^run --toString: unknown option/], // not an inherited property
  ])('%j is refused', (argv, message) => {
    expect(usageError(() => parseOptions('run', argv, DECLS))).toMatch(message);
  });

  it('writes a usage line from the table', () => {
    expect(optionSynopsis({ url: { type: 'string', value: 'URL', help: '' }, json: { type: 'boolean', help: '' }, x: { type: 'string', help: '' } })).toBe('[--url URL] [--json] [--x VALUE]');
  });

  it('lists the options with their value placeholders', () => {
    expect(optionLines({ port: { type: 'string', value: 'P', help: 'the port' }, json: { type: 'boolean', help: 'JSON' } })).toBe(
      `  ${'--port P'.padEnd(24)} the port\n  ${'--json'.padEnd(24)} JSON`,
    );
  });
});

describe('parseCommandLine', () => {
  it('run takes exactly the configuration table, booleans as booleans', () => {
    expect(Object.keys(COMMANDS.run.options).sort()).toEqual(OPTIONS.map((o) => o.flag).sort());
    for (const o of OPTIONS) expect(COMMANDS.run.options[o.flag].type, o.flag).toBe(o.kind === 'bool' ? 'boolean' : 'string');
    expect(parseCommandLine(['run', '--observe-uplinks=false', '--listen', '127.0.0.1:9725'])).toEqual({
      command: 'run',
      values: { 'observe-uplinks': false, listen: '127.0.0.1:9725' },
    });
  });

  it('lab takes the lab\'s own table', () => {
    expect(COMMANDS.lab.options).toBe(LAB_OPTIONS);
    expect(parseCommandLine(['lab', '--late-ms', '500', '--qemu', '--keep=false'])).toEqual({ command: 'lab', values: { 'late-ms': '500', qemu: true, keep: false } });
    expect(usageError(() => parseCommandLine(['lab', '--qemu', 'false']))).toMatch(/^lab: unexpected argument "false"; --qemu takes no separate value/);
    expect(usageError(() => parseCommandLine(['lab', '--late', '5']))).toMatch(/^lab --late: unknown option \(see bridgewatch lab --help\)$/);
  });

  it.each<[string[], RegExp]>([
    [['status', '--jsno'], /^status --jsno: unknown option \(see bridgewatch status --help\)$/],
    [['status', 'all'], /^status: unexpected argument "all"/],
    [['announce', '--prot', 'tap0'], /^announce --prot: unknown option/],
    [['announce', '--port', 'tap0', '52:54:00:00:00:01'], /^announce: unexpected argument "52:54:00:00:00:01"/],
    [['announce', '--port'], /^announce --port: needs a value$/],
    [['statsu'], /^unknown command "statsu" \(commands: run, lab, status, announce; see bridgewatch --help\)$/],
    [['--listen', ':1'], /^--listen: unknown option \(see bridgewatch --help\)$/],
    [['--help', 'run'], /^unexpected argument "run"/],
    [['version', 'x'], /^version: unexpected argument "x"$/],
    [['help', 'frob'], /^help: unknown command "frob"/],
    [['help', 'run', 'x'], /^help: unexpected argument "x"$/],
    [['run', '--help=yes'], /^run --help: takes no value/],
  ])('%j is refused', (argv, message) => {
    expect(usageError(() => parseCommandLine(argv))).toMatch(message);
  });

  it('help and version, for the program and for each command', () => {
    for (const argv of [['--help'], ['-h'], ['help']]) expect(parseCommandLine(argv)).toMatchObject({ help: expect.stringContaining('Usage:\n  bridgewatch run') });
    for (const argv of [['--version'], ['version']]) expect(parseCommandLine(argv)).toEqual({ version: true });
    for (const name of Object.keys(COMMANDS)) {
      const h = parseCommandLine([name, '--help']);
      expect(h).toEqual(parseCommandLine(['help', name]));
      expect(h).toMatchObject({ help: expect.stringMatching(new RegExp(`^Usage: bridgewatch ${name} `)) });
      for (const flag of Object.keys(COMMANDS[name].options)) expect((h as { help: string }).help, `${name} --${flag}`).toContain(`--${flag}`);
    }
  });
});

describe('runCli', () => {
  it('exits 2 naming the word, before any command runs', async () => {
    const lines: string[] = [];
    const orig = console.error;
    console.error = (...a: unknown[]) => void lines.push(a.join(' '));
    try {
      expect(await runCli(['run', '--observe-uplinks', 'false'])).toBe(2);
      expect(await runCli(['status', '--url', 'http://127.0.0.1:1', '--jsno'])).toBe(2);
      expect(await runCli([])).toBe(2);
    } finally {
      console.error = orig;
    }
    expect(lines[0]).toMatch(/^bridgewatch: run: unexpected argument "false"; --observe-uplinks takes no separate value/);
    expect(lines[1]).toMatch(/^bridgewatch: status --jsno: unknown option/);
    expect(lines[2]).toMatch(/^bridgewatch .* — detects VM taps/);
  });
});
