// One bridgewatch per network namespace. Our clsact filter has one fixed handle, so that a
// restart replaces its own filter instead of stacking a second; a second daemon in the same
// namespace would therefore replace the first one's filters and remove them when it leaves.
// The lock is an abstract unix socket: abstract names are per network namespace, and the
// kernel releases one when its process dies (SIGKILL included), so it never goes stale.
import { BridgewatchError } from '../errors.js';
import { c, errno, strerror } from './libc.js';

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const EADDRINUSE = 98;

/** Take the namespace's lock (in the calling thread's netns); returns the release function. */
export function lockNetns(name = 'bridgewatch'): () => void {
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw new BridgewatchError('EKERNEL', `lock network namespace: socket: ${strerror(errno())}`);
  // struct sockaddr_un: u16 family, then the path; a leading NUL makes the name abstract
  const addr = Buffer.alloc(2 + 1 + name.length);
  addr.writeUInt16LE(AF_UNIX, 0);
  addr.write(name, 3, 'ascii');
  if ((c.bind(fd, addr, addr.length) as number) < 0) {
    const e = errno();
    c.close(fd);
    const why = e === EADDRINUSE ? `another bridgewatch runs in this network namespace (EADDRINUSE on @${name})` : strerror(e);
    throw new BridgewatchError('EKERNEL', `lock network namespace: ${why}`, e);
  }
  let open = true;
  return () => {
    if (open) c.close(fd);
    open = false;
  };
}
