// Reading the small files identity depends on: asynchronously (a read never stalls the event
// loop that serves netlink and the kernel's events), bounded in size, and with a signature
// (inode, size, mtime) so an unchanged file is not read, parsed or counted again.
import { open, stat } from 'node:fs/promises';
import { isGone } from './source.js';

export type ReadResult =
  | { ok: true; text: string; sig: string }
  | { ok: false; reason: 'gone' | 'changed' | 'too_big' | 'unreadable' | 'bad_encoding'; message: string; sig?: string };

const sigOf = (s: { ino: bigint; size: bigint; mtimeNs: bigint }) => `${s.ino}:${s.size}:${s.mtimeNs}`;

/** The file's signature, or null when it does not exist. */
export async function fileSig(path: string): Promise<string | null> {
  try {
    return sigOf(await stat(path, { bigint: true }));
  } catch (e) {
    if (isGone(e)) return null;
    throw e;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The file as UTF-8 text, at most maxBytes (a larger file is refused, not truncated). */
export async function readBounded(path: string, maxBytes: number): Promise<ReadResult> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if (isGone(e)) return { ok: false, reason: 'gone', message: `${path}: no longer there` };
    return { ok: false, reason: 'unreadable', message: `open ${path}: ${(e as Error).message}` };
  }
  try {
    const st = await fh.stat({ bigint: true });
    const sig = sigOf(st);
    if (!st.isFile()) return { ok: false, reason: 'unreadable', message: `${path}: not a regular file`, sig };
    if (st.size > BigInt(maxBytes)) return { ok: false, reason: 'too_big', message: `${path}: ${st.size} bytes, more than the ${maxBytes} accepted`, sig };
    // the file may grow between fstat and read: read one byte more than allowed to notice
    const buf = Buffer.alloc(Math.min(maxBytes, Number(st.size)) + 1);
    let len = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, len, buf.length - len, len);
      if (bytesRead === 0) break;
      len += bytesRead;
      if (len === buf.length) {
        if (len > maxBytes) return { ok: false, reason: 'too_big', message: `${path}: more than the ${maxBytes} bytes accepted`, sig };
        return { ok: false, reason: 'changed', message: `${path}: grew while being read` };
      }
    }
    try {
      return { ok: true, text: utf8.decode(buf.subarray(0, len)), sig };
    } catch {
      return { ok: false, reason: 'bad_encoding', message: `${path}: not UTF-8`, sig };
    }
  } catch (e) {
    if (isGone(e)) return { ok: false, reason: 'gone', message: `${path}: no longer there` };
    return { ok: false, reason: 'unreadable', message: `read ${path}: ${(e as Error).message}` };
  } finally {
    await fh.close().catch(() => undefined);
  }
}
