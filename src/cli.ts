// Command line: parses argv into a command and flags; each command lives in its own module.
import { BridgewatchError } from './errors.js';
import { optionsHelp } from './config.js';
import { VERSION } from './paths.js';

export interface Parsed {
  command: string;
  flags: Record<string, string | boolean>;
  rest: string[];
}

const BOOL_FLAGS = new Set(['help', 'h', 'keep', 'qemu', 'json', 'version', 'no-color', 'down', 'observe-uplinks']);

export function parseArgs(argv: string[]): Parsed {
  const flags: Record<string, string | boolean> = {};
  const rest: string[] = [];
  let command = '';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    const m = /^--?([a-zA-Z][\w-]*)(?:=(.*))?$/.exec(a);
    if (!m) {
      if (!command) command = a;
      else rest.push(a);
      continue;
    }
    const [, name, inline] = m;
    if (inline !== undefined) flags[name] = inline;
    else if (BOOL_FLAGS.has(name)) flags[name] = true;
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) flags[name] = argv[++i];
    else flags[name] = true;
  }
  return { command, flags, rest };
}

export const USAGE = `bridgewatch ${VERSION} — detects VM taps that join a Linux bridge after the guest's
post-migration announcements (RARP, gARP, NA), and re-announces on the guest's behalf.

Usage:
  bridgewatch run [options]          the daemon: eBPF on every bridge port and tap, Prometheus
                                     metrics and the HTTP API on --listen
  bridgewatch lab [--late-ms N] [--interval-ms N] [--cap-s N] [--keep] [--qemu] [--json]
                                     a live migration with a late tap join in network
                                     namespaces, without and with bridgewatch
  bridgewatch lab --down             remove a lab left up by --keep
  bridgewatch status [--url URL]     the port table of a running daemon
  bridgewatch announce --port P [--mac M] [--url URL] [--token T]
                                     re-announce (RARP) a guest now, like QEMU's announce-self
  bridgewatch version | help

Options of run (flags win over BRIDGEWATCH_* environment, which wins over --config):
${optionsHelp()}

Exit status: 0 ok, 1 runtime failure, 2 bad usage or configuration.`;

export async function runCli(argv: string[]): Promise<number> {
  const p = parseArgs(argv);
  if (p.flags.help || p.flags.h || p.command === 'help' || (!p.command && !p.flags.version)) {
    console.log(USAGE);
    return p.command || p.flags.help || p.flags.h ? 0 : 2;
  }
  if (p.command === 'version' || p.flags.version) {
    console.log(VERSION);
    return 0;
  }
  try {
    switch (p.command) {
      case 'run':
        return await (await import('./main.js')).runDaemon(p.flags);
      case 'status':
        return await (await import('./client.js')).status(p.flags);
      case 'announce':
        return await (await import('./client.js')).announce(p.flags);
      case 'lab':
        return await (await import('./lab/lab.js')).runLab(p.flags);
      default:
        console.error(`bridgewatch: unknown command ${JSON.stringify(p.command)}; see bridgewatch --help`);
        return 2;
    }
  } catch (e) {
    if (e instanceof BridgewatchError) {
      console.error(`bridgewatch: ${e.message}`);
      return e.code === 'ECONFIG' ? 2 : 1;
    }
    throw e;
  }
}
