// Reading a Prometheus text exposition back into numbers: what a test asserts about /metrics.
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Every sample line of an exposition (comments and blank lines skipped). */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`parse exposition: bad line ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const same = (a: Record<string, string>, b: Record<string, string>): boolean =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(b).every(([k, v]) => a[k] === v);

/** The value of the series with exactly these labels, or undefined when it is not exposed. */
export function sampleValue(samples: Sample[] | string, name: string, labels: Record<string, string> = {}): number | undefined {
  const list = typeof samples === 'string' ? parseExposition(samples) : samples;
  return list.find((s) => s.name === name && same(s.labels, labels))?.value;
}

/** Every series of a metric name. */
export const seriesOf = (samples: Sample[] | string, name: string): Sample[] =>
  (typeof samples === 'string' ? parseExposition(samples) : samples).filter((s) => s.name === name);
