// Configuration: defaults, precedence (flags > BRIDGEWATCH_* env > config file > defaults),
// durations, and an error for every kind of bad value that names the field as the user wrote it
// (--flag, BRIDGEWATCH_VAR or `file: key`) and says what is allowed.
import { describe, expect, it } from 'vitest';
import { loadConfig, OPTIONS, optionNames, optionsHelp, parseDuration, type Config, type ConfigSources } from '../../src/config.js';
import { BridgewatchError } from '../../src/errors.js';

const FILE = '/etc/bridgewatch/test.json';

/** loadConfig with a config file held in memory (any path other than FILE does not exist). */
function load(o: { flags?: Record<string, string | boolean>; env?: Record<string, string>; file?: unknown } = {}): Config {
  const src: ConfigSources = {
    flags: o.flags,
    env: o.env,
    readFile: (p) => {
      if (p !== FILE || o.file === undefined) throw new Error(`ENOENT: no such file or directory, open '${p}'`);
      return typeof o.file === 'string' ? o.file : JSON.stringify(o.file);
    },
  };
  if (o.file !== undefined && !o.flags?.config && !o.env?.BRIDGEWATCH_CONFIG) src.flags = { ...o.flags, config: FILE };
  return loadConfig(src);
}

/** The ECONFIG error that loading throws (fails the test when it loads). */
function configError(o: Parameters<typeof load>[0]): BridgewatchError {
  try {
    load(o);
  } catch (e) {
    expect(e).toBeInstanceOf(BridgewatchError);
    expect((e as BridgewatchError).code).toBe('ECONFIG');
    return e as BridgewatchError;
  }
  throw new Error(`expected a config error for ${JSON.stringify(o)}`);
}

describe('defaults', () => {
  const cfg = loadConfig({});

  it.each<[keyof Config, unknown]>([
    ['listen', { host: '0.0.0.0', port: 9725 }],
    ['bridges', ['*']],
    ['excludeBridges', []],
    ['devices', ['tap*', 'vif*', 'vnet*', 'macvtap*']],
    ['excludeDevices', []],
    ['uplinks', []],
    ['silentAfterMs', 10_000],
    ['logLevel', 'info'],
    ['attach', 'auto'],
    ['announce', 'on'],
    // QEMU's migration defaults (migration/options.c)
    ['announceInitial', 50],
    ['announceMax', 550],
    ['announceRounds', 5],
    ['announceStep', 100],
    ['announceHoldoffMs', 10_000],
    ['announceRatePerSec', 200],
    ['apiToken', ''], // the announce API is off unless a token is configured
    ['apiTokenFile', ''],
    ['maxPorts', 4096],
    ['maxMacsPerPort', 64],
    ['bpfMaxMacs', 16_384],
    ['maxEvents', 4096],
    ['stateDir', '/run/bridgewatch'],
    ['config', ''],
  ])('%s = %j', (key, want) => {
    expect(cfg[key]).toEqual(want);
  });

  it('every option has a default that passes its own validation, and only those keys are set', () => {
    expect(Object.keys(cfg).sort()).toEqual(OPTIONS.map((o) => o.key).sort());
  });

  it('an empty environment variable counts as unset', () => {
    expect(load({ env: { BRIDGEWATCH_SILENT_AFTER: '', BRIDGEWATCH_LISTEN: '' } })).toMatchObject({ silentAfterMs: 10_000, listen: { port: 9725 } });
  });
});

describe('precedence: flags > environment > config file > defaults', () => {
  const file = { silentAfter: '1s', listen: '127.0.0.1:1001', announce: 'off', bridges: ['brf'], maxPorts: 11 };
  const env = { BRIDGEWATCH_SILENT_AFTER: '2s', BRIDGEWATCH_LISTEN: '127.0.0.1:1002', BRIDGEWATCH_BRIDGES: 'bre1,bre2' };
  const flags = { 'silent-after': '3s', announce: 'dry-run' };

  it.each<[string, Parameters<typeof load>[0], Partial<Config>]>([
    ['file only', { file }, { silentAfterMs: 1000, listen: { host: '127.0.0.1', port: 1001 }, announce: 'off', bridges: ['brf'], maxPorts: 11 }],
    ['env over file', { file, env }, { silentAfterMs: 2000, listen: { host: '127.0.0.1', port: 1002 }, announce: 'off', bridges: ['bre1', 'bre2'], maxPorts: 11 }],
    ['flags over env and file', { file, env, flags }, { silentAfterMs: 3000, listen: { host: '127.0.0.1', port: 1002 }, announce: 'dry-run', bridges: ['bre1', 'bre2'], maxPorts: 11 }],
    ['flags over defaults', { flags }, { silentAfterMs: 3000, announce: 'dry-run', listen: { host: '0.0.0.0', port: 9725 }, maxPorts: 4096 }],
    ['env over defaults', { env }, { silentAfterMs: 2000, bridges: ['bre1', 'bre2'], announce: 'on' }],
  ])('%s', (_name, sources, want) => {
    expect(load(sources)).toMatchObject(want);
  });

  it('finds the file through --config or BRIDGEWATCH_CONFIG, and records which one it read', () => {
    expect(load({ flags: { config: FILE }, file: { maxPorts: 7 } })).toMatchObject({ maxPorts: 7, config: FILE });
    expect(load({ env: { BRIDGEWATCH_CONFIG: FILE }, file: { maxPorts: 8 } })).toMatchObject({ maxPorts: 8, config: FILE });
  });

  it('every option has a flag, an environment variable and a file key, and --help lists them', () => {
    const help = optionsHelp();
    for (const o of OPTIONS) {
      const n = optionNames(o);
      expect(n.env).toMatch(/^BRIDGEWATCH_[A-Z_]+$/);
      expect(help).toContain(n.flag);
      expect(help).toContain(n.env);
      if (o.key === 'config') continue;
      // the same value through each source lands in the same key
      const value = Array.isArray(o.default) ? (o.default as string[]).join(',') : String(o.default);
      expect(load({ flags: { [o.flag]: value } })[o.key]).toEqual(loadConfig({})[o.key]);
      expect(load({ env: { [n.env]: value } })[o.key]).toEqual(loadConfig({})[o.key]);
      expect(load({ file: { [n.file]: o.default } })[o.key]).toEqual(loadConfig({})[o.key]);
    }
  });
});

describe('durations', () => {
  it.each<[unknown, number]>([
    ['500ms', 500],
    ['10s', 10_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1.5s', 1500],
    ['250', 250], // plain number: milliseconds
    [' 10s ', 10_000],
    [0, 0],
    [750, 750], // a JSON number in the config file: milliseconds
  ])('%j -> %d ms', (v, want) => {
    expect(parseDuration(v, 'x')).toBe(want);
  });

  it.each<[unknown]>([['abc'], ['10x'], ['-5s'], ['s'], ['10 s'], ['1e3'], [''], [-1], [Number.NaN], [Infinity], [null], [true], [[10]]])('%j is refused', (v) => {
    expect(() => parseDuration(v, '--silent-after')).toThrow(
      /^config --silent-after: invalid duration .* \(allowed: milliseconds, or a number with ms, s, m or h, e\.g\. 10s\)$/,
    );
  });

  it.each<[string, Parameters<typeof load>[0], keyof Config, number]>([
    ['flag', { flags: { 'silent-after': '2m' } }, 'silentAfterMs', 120_000],
    ['env', { env: { BRIDGEWATCH_ANNOUNCE_HOLDOFF: '500ms' } }, 'announceHoldoffMs', 500],
    ['file string', { file: { silentAfter: '30s' } }, 'silentAfterMs', 30_000],
    ['file number (ms)', { file: { announceHoldoff: 1500 } }, 'announceHoldoffMs', 1500],
    ['holdoff 0 turns it off', { flags: { 'announce-holdoff': '0' } }, 'announceHoldoffMs', 0],
  ])('from the %s', (_name, sources, key, want) => {
    expect(load(sources)[key]).toBe(want);
  });
});

describe('listen addresses', () => {
  it.each<[string, { host: string; port: number }]>([
    ['127.0.0.1:9725', { host: '127.0.0.1', port: 9725 }],
    ['0.0.0.0:80', { host: '0.0.0.0', port: 80 }],
    [':9100', { host: '0.0.0.0', port: 9100 }],
    ['[::]:9725', { host: '::', port: 9725 }],
    ['[::1]:1', { host: '::1', port: 1 }],
    ['localhost:65535', { host: 'localhost', port: 65535 }],
  ])('%s', (v, want) => {
    expect(load({ flags: { listen: v } }).listen).toEqual(want);
  });
});

describe('bad values name the field and what is allowed', () => {
  const cases: Array<[string, Parameters<typeof load>[0], RegExp]> = [
    // durations
    ['duration flag', { flags: { 'silent-after': 'abc' } }, /^config --silent-after: invalid duration "abc" \(allowed: milliseconds, or a number with ms, s, m or h/],
    ['duration below min', { flags: { 'silent-after': '50ms' } }, /^config --silent-after: "50ms" out of range \(allowed: 100\.\.86400000 ms\)$/],
    ['duration above max', { env: { BRIDGEWATCH_SILENT_AFTER: '25h' } }, /^config BRIDGEWATCH_SILENT_AFTER: "25h" out of range \(allowed: 100\.\.86400000 ms\)$/],
    ['duration unit unknown', { env: { BRIDGEWATCH_SILENT_AFTER: '2d' } }, /^config BRIDGEWATCH_SILENT_AFTER: invalid duration "2d"/],
    ['duration in file', { file: { announceHoldoff: '10 s' } }, new RegExp(`^config ${FILE}: announceHoldoff: invalid duration "10 s"`)],
    // listen
    ['listen without port', { flags: { listen: 'nope' } }, /^config --listen: invalid address "nope" \(allowed: host:port, e\.g\. 0\.0\.0\.0:9725/],
    ['listen port too big', { flags: { listen: '127.0.0.1:70000' } }, /^config --listen: invalid address "127\.0\.0\.1:70000" \(allowed: host:port/],
    ['listen from env', { env: { BRIDGEWATCH_LISTEN: '9725' } }, /^config BRIDGEWATCH_LISTEN: invalid address "9725"/],
    ['listen not a string', { file: { listen: 9725 } }, new RegExp(`^config ${FILE}: listen: invalid address 9725`)],
    // enums
    ['enum flag', { flags: { announce: 'maybe' } }, /^config --announce: invalid value "maybe" \(allowed: on, dry-run, off\)$/],
    ['enum env', { env: { BRIDGEWATCH_ATTACH: 'xdp' } }, /^config BRIDGEWATCH_ATTACH: invalid value "xdp" \(allowed: auto, tcx, tc\)$/],
    ['enum file', { file: { logLevel: 'verbose' } }, new RegExp(`^config ${FILE}: logLevel: invalid value "verbose" \\(allowed: fatal, error, warn, info, debug, trace, silent\\)$`)],
    ['enum is case-sensitive', { flags: { announce: 'ON' } }, /^config --announce: invalid value "ON" \(allowed: on, dry-run, off\)$/],
    // integers
    ['int env zero', { env: { BRIDGEWATCH_MAX_PORTS: '0' } }, /^config BRIDGEWATCH_MAX_PORTS: "0" out of range \(allowed: 1\.\.1000000\)$/],
    ['int not a number', { flags: { 'max-ports': 'many' } }, /^config --max-ports: invalid integer "many" \(allowed: 1\.\.1000000\)$/],
    ['int fraction', { flags: { 'announce-rounds': '2.5' } }, /^config --announce-rounds: invalid integer "2\.5" \(allowed: 1\.\.1000\)$/],
    ['int negative', { flags: { 'announce-step': '-1' } }, /^config --announce-step: "-1" out of range \(allowed: 0\.\.10000\)$/],
    ['int above max', { file: { bpfMaxMacs: 10_000_000 } }, new RegExp(`^config ${FILE}: bpfMaxMacs: 10000000 out of range \\(allowed: 64\\.\\.4194304\\)$`)],
    ['int as a JSON string', { file: { maxEvents: '8' } }, new RegExp(`^config ${FILE}: maxEvents: "8" out of range \\(allowed: 16\\.\\.1000000\\)$`)],
    // lists
    ['list with a space', { flags: { bridges: 'br 0' } }, /^config --bridges: invalid list "br 0" \(allowed: comma-separated names or globs with \* and \?\)$/],
    ['list with a slash', { env: { BRIDGEWATCH_DEVICES: 'tap*,a/b' } }, /^config BRIDGEWATCH_DEVICES: invalid list "tap\*,a\/b"/],
    ['list of numbers', { file: { uplinks: [1, 2] } }, new RegExp(`^config ${FILE}: uplinks: invalid list \\[1,2\\]`)],
    // strings
    ['string from file not a string', { file: { apiToken: 42 } }, new RegExp(`^config ${FILE}: apiToken: expected a string, got 42$`)],
    // flags
    ['unknown flag', { flags: { 'silent-afetr': '1s' } }, /^config --silent-afetr: unknown option \(see bridgewatch run --help\)$/],
    ['flag without value', { flags: { listen: true } }, /^config --listen: needs a value$/],
    ['--config without a path', { flags: { config: true } }, /^config --config: needs a value$/],
    // the config file
    [
      'unknown key in file',
      { file: { silentAftr: '1s' } },
      new RegExp(`^config ${FILE}: silentAftr: unknown key \\(allowed: listen, bridges, .*silentAfter.*\\)$`),
    ],
    ['"config" key in file', { file: { config: '/other.json' } }, new RegExp(`^config ${FILE}: config: unknown key`)],
    ['file not JSON', { file: '{"silentAfter": ' }, new RegExp(`^config ${FILE}: cannot read JSON config: `)],
    ['file is an array', { file: [1] }, new RegExp(`^config ${FILE}: expected a JSON object$`)],
    ['file is null', { file: 'null' }, new RegExp(`^config ${FILE}: expected a JSON object$`)],
    ['file missing', { flags: { config: '/nonexistent/bw.json' } }, /^config \/nonexistent\/bw\.json: cannot read JSON config: ENOENT/],
  ];

  it.each(cases)('%s', (_name, sources, message) => {
    expect(configError(sources).message).toMatch(message);
  });

  it('a bad value in a lower source fails even when a higher one overrides it (every source is validated)', () => {
    expect(configError({ file: { silentAfter: 'abc' }, flags: { 'silent-after': '1s' } }).message).toMatch(new RegExp(`^config ${FILE}: silentAfter:`));
    expect(configError({ env: { BRIDGEWATCH_ANNOUNCE: 'maybe' }, flags: { announce: 'on' } }).message).toMatch(/^config BRIDGEWATCH_ANNOUNCE:/);
  });

  it('the allowed values in every enum error are exactly the option table', () => {
    for (const o of OPTIONS.filter((x) => x.kind === 'enum')) {
      expect(configError({ flags: { [o.flag]: 'nonsense' } }).message).toBe(
        `config --${o.flag}: invalid value "nonsense" (allowed: ${o.allowed!.join(', ')})`,
      );
    }
  });

  it('every int and duration option names its range when out of it', () => {
    for (const o of OPTIONS.filter((x) => x.kind === 'int' || x.kind === 'duration')) {
      const below = o.min! - 1;
      expect(configError({ flags: { [o.flag]: String(below) } }).message, o.flag).toMatch(
        o.kind === 'duration' && below < 0
          ? new RegExp(`^config --${o.flag}: invalid duration`)
          : new RegExp(`^config --${o.flag}: "${below}" out of range \\(allowed: ${o.min}\\.\\.${o.max}${o.kind === 'duration' ? ' ms' : ''}\\)$`),
      );
    }
  });
});

describe('--api-token-file', () => {
  const TOKEN_FILE = '/etc/bridgewatch/token';
  const withFile = (content: string | Error, flags: Record<string, string> = {}, env: Record<string, string> = {}) =>
    loadConfig({
      flags,
      env,
      readFile: (p) => {
        if (p !== TOKEN_FILE) throw new Error(`ENOENT: no such file or directory, open '${p}'`);
        if (content instanceof Error) throw content;
        return content;
      },
    });
  const refused = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      expect((e as BridgewatchError).code).toBe('ECONFIG');
      return (e as Error).message;
    }
    throw new Error('expected a config error');
  };

  it('reads the token at load, trimmed (files end with a newline), from the flag or the environment', () => {
    expect(withFile('s3cret\n', { 'api-token-file': TOKEN_FILE })).toMatchObject({ apiToken: 's3cret', apiTokenFile: TOKEN_FILE });
    expect(withFile('  s3cret \r\n', {}, { BRIDGEWATCH_API_TOKEN_FILE: TOKEN_FILE }).apiToken).toBe('s3cret');
  });

  it.each<[string, () => unknown, RegExp]>([
    ['a file that cannot be read', () => withFile('x', { 'api-token-file': '/nonexistent/token' }), /^config --api-token-file: cannot read the token file: ENOENT/],
    ['an unreadable file', () => withFile(new Error("EACCES: permission denied, open '/etc/bridgewatch/token'"), { 'api-token-file': TOKEN_FILE }), /^config --api-token-file: cannot read the token file: EACCES/],
    ['an empty file', () => withFile('\n \n', { 'api-token-file': TOKEN_FILE }), /^config --api-token-file: \/etc\/bridgewatch\/token is empty$/],
    ['a token with a space inside', () => withFile('two words\n', {}, { BRIDGEWATCH_API_TOKEN_FILE: TOKEN_FILE }), /^config BRIDGEWATCH_API_TOKEN_FILE \(\/etc\/bridgewatch\/token\): the token must be printable ASCII without spaces/],
    ['both flags', () => withFile('a', { 'api-token': 'b', 'api-token-file': TOKEN_FILE }), /^config --api-token-file: cannot be used with --api-token \(give the token one way\)$/],
    ['the file flag with the token in the environment', () => withFile('a', { 'api-token-file': TOKEN_FILE }, { BRIDGEWATCH_API_TOKEN: 'b' }), /^config --api-token-file: cannot be used with BRIDGEWATCH_API_TOKEN/],
    ['both in the environment', () => withFile('a', {}, { BRIDGEWATCH_API_TOKEN: 'b', BRIDGEWATCH_API_TOKEN_FILE: TOKEN_FILE }), /^config BRIDGEWATCH_API_TOKEN_FILE: cannot be used with BRIDGEWATCH_API_TOKEN/],
    ['--api-token with a newline', () => load({ flags: { 'api-token': 'abc\n' } }), /^config --api-token: the token must be printable ASCII without spaces/],
  ])('%s is refused', (_name, f, message) => {
    expect(refused(f)).toMatch(message);
  });
});
