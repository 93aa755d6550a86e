// Command line: the command word, then that command's own options, parsed strictly (src/args.ts).
// Each command lives in its own module; this file only dispatches.
import { optionLines, optionSynopsis, parseOptions, type OptionDecls, type Values } from './args.js';
import { ANNOUNCE_OPTIONS, STATUS_OPTIONS } from './client.js';
import { OPTIONS, optionsHelp } from './config.js';
import { BridgewatchError } from './errors.js';
import { LAB_OPTIONS } from './lab-options.js';
import { VERSION } from './paths.js';

interface Command {
  /** one line of arguments for the usage text */
  synopsis: string;
  summary: string;
  options: OptionDecls;
  /** the options part of `bridgewatch <command> --help` */
  optionsHelp(): string;
  run(values: Values): Promise<number>;
}

/** `run`'s flags are the configuration table's: booleans take no value, the rest one. */
const RUN_OPTIONS: OptionDecls = Object.fromEntries(
  OPTIONS.map((o) => [o.flag, { type: o.kind === 'bool' ? 'boolean' : 'string', help: o.help }] as const),
);

const HELP = { type: 'boolean', short: 'h', help: 'this help' } as const;

export const COMMANDS: Readonly<Record<string, Command>> = {
  run: {
    synopsis: '[options]',
    summary: 'the daemon: eBPF on every guest port, Prometheus metrics and the HTTP API on --listen',
    options: RUN_OPTIONS,
    optionsHelp: () =>
      `Options (flags win over BRIDGEWATCH_* environment, which wins over --config; a boolean is\n` +
      `--x, or --x=true / --x=false):\n${optionsHelp()}`,
    run: async (v) => (await import('./main.js')).runDaemon(v),
  },
  lab: {
    synopsis: optionSynopsis(LAB_OPTIONS), // a flag added to the lab's table shows up here and in --help
    summary: 'a live migration with a late tap join in network namespaces, without and with bridgewatch',
    options: LAB_OPTIONS,
    optionsHelp: () => `Options:\n${optionLines(LAB_OPTIONS)}`,
    run: async (v) => (await import('./lab/lab.js')).runLab(v),
  },
  status: {
    synopsis: optionSynopsis(STATUS_OPTIONS),
    summary: 'the port table of a running daemon, and its recent guest arrivals with their convergence',
    options: STATUS_OPTIONS,
    optionsHelp: () => `Options:\n${optionLines(STATUS_OPTIONS)}`,
    run: async (v) => (await import('./client.js')).status(v),
  },
  announce: {
    synopsis: '--port P [--mac M] [--url URL] [--token-file FILE | --token T]',
    summary: 're-announce (RARP) a guest now, like QEMU\'s announce-self',
    options: ANNOUNCE_OPTIONS,
    optionsHelp: () => `Options:\n${optionLines(ANNOUNCE_OPTIONS)}`,
    run: async (v) => (await import('./client.js')).announce(v),
  },
};

export const USAGE = `bridgewatch ${VERSION} — detects VM taps that join a Linux bridge after the guest's
post-migration announcements (RARP, gARP, NA), and re-announces on the guest's behalf.

Usage:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  bridgewatch ${name} ${c.synopsis}\n      ${c.summary}`)
  .join('\n')}
  bridgewatch version | help [COMMAND] | COMMAND --help

Options of run (flags win over BRIDGEWATCH_* environment, which wins over --config):
${optionsHelp()}

Exit status: 0 ok, 1 runtime failure, 2 bad usage or configuration.`;

function commandHelp(name: string): string {
  const c = COMMANDS[name];
  return `Usage: bridgewatch ${name} ${c.synopsis}\n${c.summary}\n\n${c.optionsHelp()}\n\nExit status: 0 ok, 1 runtime failure, 2 bad usage or configuration.`;
}

/** What argv asks for, or a BridgewatchError('ECONFIG') naming the word it cannot take. */
export function parseCommandLine(argv: readonly string[]): { help: string } | { version: true } | { command: string; values: Values } {
  const [first = '', ...rest] = argv;
  if (first === '' || first.startsWith('-')) {
    const v = parseOptions('', argv, { help: HELP, version: { type: 'boolean', help: 'print the version' } });
    if (v.version && !v.help) return { version: true };
    if (v.help) return { help: USAGE };
    throw new BridgewatchError('ECONFIG', 'a command is needed (run, lab, status, announce; see bridgewatch --help)');
  }
  if (first === 'version') {
    if (rest.length) throw new BridgewatchError('ECONFIG', `version: unexpected argument ${JSON.stringify(rest[0])}`);
    return { version: true };
  }
  if (first === 'help') {
    const [topic, ...more] = rest;
    if (more.length) throw new BridgewatchError('ECONFIG', `help: unexpected argument ${JSON.stringify(more[0])}`);
    if (topic === undefined) return { help: USAGE };
    if (!Object.hasOwn(COMMANDS, topic)) throw new BridgewatchError('ECONFIG', `help: unknown command ${JSON.stringify(topic)} (commands: ${Object.keys(COMMANDS).join(', ')})`);
    return { help: commandHelp(topic) };
  }
  if (!Object.hasOwn(COMMANDS, first))
    throw new BridgewatchError('ECONFIG', `unknown command ${JSON.stringify(first)} (commands: ${Object.keys(COMMANDS).join(', ')}; see bridgewatch --help)`);
  const { help, ...values } = parseOptions(first, rest, { ...COMMANDS[first].options, help: HELP });
  if (help) return { help: commandHelp(first) };
  return { command: first, values };
}

export async function runCli(argv: string[]): Promise<number> {
  if (!argv.length) {
    console.error(USAGE);
    return 2;
  }
  try {
    const p = parseCommandLine(argv);
    if ('help' in p) {
      console.log(p.help);
      return 0;
    }
    if ('version' in p) {
      console.log(VERSION);
      return 0;
    }
    return await COMMANDS[p.command].run(p.values);
  } catch (e) {
    if (e instanceof BridgewatchError) {
      console.error(`bridgewatch: ${e.message}`);
      return e.code === 'ECONFIG' ? 2 : 1;
    }
    throw e;
  }
}
