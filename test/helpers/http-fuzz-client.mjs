// Sends seeded random raw HTTP/1.x requests to host:port (run inside the daemon's namespace) and
// prints one JSON line: the status codes seen (or "closed" when the server hung up without one).
//   node http-fuzz-client.mjs HOST PORT SEED COUNT
import { connect } from 'node:net';

const [host, port, seedArg, countArg] = process.argv.slice(2);
let a = Number(seedArg) >>> 0;
const r = () => {
  a = (a + 0x6d2b79f5) >>> 0;
  let t = a;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const int = (k) => Math.floor(r() * k);
const pick = (xs) => xs[int(xs.length)];
const junk = (n) => Buffer.from(Array.from({ length: n }, () => int(256))).toString('latin1');
const word = (n) => Array.from({ length: n }, () => pick('abcdefghijklmnopqrstuvwxyz0123456789-_.~%:'.split(''))).join('');

function request() {
  const method = pick(['GET', 'GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', word(1 + int(8)).toUpperCase(), junk(4)]);
  const path = pick([
    '/metrics', '/healthz', '/readyz', '/api/v1/ports', `/api/v1/ports/${word(int(20))}`, `/api/v1/ports/${'x'.repeat(int(300))}`,
    `/api/v1/events?since=${pick([word(int(30)), String(int(1e6)), '-1', '1e309', 'NaN', '%00', ''])}&limit=${pick([String(int(100000)), '-5', 'abc', '0', ''])}`,
    '/api/v1/announce', '/api/v1/announce?x=1', `/${word(int(40))}`, `/${'a/'.repeat(int(200))}`, '/%2e%2e/%2e%2e/etc/passwd', `/${junk(int(20))}`,
    `/api/v1/${'%'.repeat(int(5))}${word(3)}`, '*', `http://evil/${word(5)}`, '/' + 'p'.repeat(int(20000)),
  ]);
  const version = pick(['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/9.9', 'FOO']);
  const headers = [`Host: ${host}`];
  if (r() < 0.3) headers.push(`Authorization: Bearer ${pick(['fuzz-token', word(int(40)), ''])}`);
  if (r() < 0.1) headers.push(`X-Big: ${'b'.repeat(20000 + int(100000))}`);
  if (r() < 0.1) for (let i = int(300); i > 0; i--) headers.push(`X-${word(5)}: ${word(10)}`);
  let body = '';
  if (['POST', 'PUT', 'PATCH'].includes(method) || r() < 0.1) {
    body = pick([
      JSON.stringify({ port: pick(['tap0', word(int(20)), 5, null]), mac: pick(['52:54:00:00:00:01', word(17), 12, undefined]) }),
      JSON.stringify({ port: 'x'.repeat(int(5000)) }), '{', '[]', 'null', '"str"', junk(int(200)), '{"port":' + '['.repeat(int(2000)),
      'x'.repeat(int(2) ? int(2000) : 2_000_000),
    ]);
    headers.push(`Content-Type: ${pick(['application/json', 'application/json', 'text/plain', 'application/x-www-form-urlencoded', word(10)])}`);
    const len = Buffer.byteLength(body, 'latin1');
    headers.push(`Content-Length: ${pick([len, len, len, len + 10, Math.max(0, len - 1), -1, 'abc'])}`);
  }
  if (r() < 0.05) headers.push('Transfer-Encoding: chunked');
  return Buffer.from(`${method} ${path} ${version}\r\n${headers.join('\r\n')}\r\n\r\n${body}`, 'latin1');
}

function send(buf) {
  return new Promise((resolve) => {
    const s = connect(Number(port), host);
    let got = '';
    const done = (v) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(5000, () => done('timeout'));
    s.on('data', (d) => {
      got += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
      if (m) done(m[1]);
    });
    s.on('error', () => done(got ? 'partial' : 'closed'));
    s.on('close', () => done(got ? 'partial' : 'closed'));
    s.on('connect', () => s.end(buf));
  });
}

const count = Number(countArg);
const seen = {};
let next = 0;
async function worker() {
  while (next < count) {
    next++;
    const v = await send(request());
    seen[v] = (seen[v] ?? 0) + 1;
  }
}
await Promise.all(Array.from({ length: 16 }, worker));
process.stdout.write(JSON.stringify(seen) + '\n');
