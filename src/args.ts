// Strict command-line parsing, one table of options per command: every word is a declared
// option or the value of one, or the parse fails naming it (exit 2). Nothing is ignored.
import { BridgewatchError } from './errors.js';

export interface OptionDecl {
  /** boolean: `--x` (or `--x=true` / `--x=false`); string: `--x VALUE` or `--x=VALUE` */
  type: 'string' | 'boolean';
  help: string;
  /** placeholder in help, e.g. N or URL */
  value?: string;
  short?: string;
}

export type OptionDecls = Readonly<Record<string, OptionDecl>>;
export type Values = Record<string, string | boolean>;

const usage = (msg: string): never => {
  throw new BridgewatchError('ECONFIG', msg);
};

/**
 * Parse `argv` against `decls`; `context` names the command in errors ("run", "lab", or ""). A boolean
 * never takes the next word: `--observe-uplinks false` is refused (a stray "false"), and the
 * message says to write `--observe-uplinks=false`.
 */
export function parseOptions(context: string, argv: readonly string[], decls: OptionDecls): Values {
  const out: Values = {};
  const byShort = new Map(Object.entries(decls).flatMap(([name, d]) => (d.short ? [[d.short, name] as const] : [])));
  const see = `see bridgewatch ${context ? context + ' ' : ''}--help`;
  const where = (what: string) => (context ? `${context} ${what}` : what);
  const lead = context ? `${context}: ` : '';
  let lastBool = '';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      if (i + 1 < argv.length) usage(`${lead}unexpected argument ${JSON.stringify(argv[i + 1])} (${see})`);
      break;
    }
    let name: string;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      inline = eq < 0 ? undefined : a.slice(eq + 1);
      if (!Object.hasOwn(decls, name)) usage(`${where(`--${name}`)}: unknown option (${see})`);
    } else if (/^-[^-\d]/.test(a)) {
      const long = byShort.get(a.slice(1));
      if (!long) usage(`${where(a)}: unknown option (${see})`);
      name = long!;
    } else {
      const hint = lastBool && /^(true|false|yes|no|on|off|[01])$/i.test(a) ? `; --${lastBool} takes no separate value: write --${lastBool}=${a.toLowerCase()}` : '';
      return usage(`${lead}unexpected argument ${JSON.stringify(a)}${hint} (${see})`);
    }
    if (Object.hasOwn(out, name)) usage(`${where(`--${name}`)}: given twice`);
    lastBool = '';
    if (decls[name].type === 'boolean') {
      if (inline === undefined) {
        out[name] = true;
        lastBool = name;
      } else if (inline === 'true' || inline === 'false') out[name] = inline === 'true';
      else usage(`${where(`--${name}`)}: takes no value, or =true / =false (got ${JSON.stringify(inline)})`);
    } else if (inline !== undefined) out[name] = inline;
    else {
      const next = argv[i + 1];
      // a value that starts with -- is most likely the next option: say the value is missing
      if (next === undefined || next.startsWith('--')) usage(`${where(`--${name}`)}: needs a value`);
      out[name] = next;
      i++;
    }
  }
  return out;
}

/** `[--a N] [--b]` for a usage line. */
export function optionSynopsis(decls: OptionDecls): string {
  return Object.entries(decls)
    .map(([name, d]) => `[--${name}${d.type === 'string' ? ` ${d.value ?? 'VALUE'}` : ''}]`)
    .join(' ');
}

/** Help lines for a table of options. */
export function optionLines(decls: OptionDecls): string {
  return Object.entries(decls)
    .map(([name, d]) => {
      const left = `--${name}${d.type === 'string' ? ` ${d.value ?? 'VALUE'}` : ''}`;
      return `  ${left.padEnd(24)} ${d.help}`;
    })
    .join('\n');
}
