// A large receive buffer for the rtnetlink socket. SO_RCVBUF is capped by net.core.rmem_max
// (208 KiB by default, a few hundred link messages); as root SO_RCVBUFFORCE is not. The netlink
// package does not expose its fd, so we find it by the socket's port id: /proc/.../net/netlink
// maps port id -> inode, /proc/self/fd maps inode -> fd.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { c } from '../sys/libc.js';

const SOL_SOCKET = 1;
const SO_RCVBUFFORCE = 33;
const NETLINK_ROUTE = 0;

/** Inode of the NETLINK_ROUTE socket bound to `portId` in the calling thread's netns. */
export function netlinkInode(table: string, portId: number): string | null {
  // header: sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
  for (const line of table.split('\n').slice(1)) {
    const col = line.trim().split(/\s+/);
    if (col.length >= 10 && Number(col[1]) === NETLINK_ROUTE && Number(col[2]) === portId) return col[9];
  }
  return null;
}

export function findNetlinkFd(portId: number): number | null {
  let inode: string | null;
  try {
    inode = netlinkInode(readFileSync('/proc/thread-self/net/netlink', 'utf8'), portId);
  } catch {
    return null;
  }
  if (!inode) return null;
  const want = `socket:[${inode}]`;
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === want) return Number(name);
    } catch {
      // an fd closed while we looked
    }
  }
  return null;
}

/** SO_RCVBUFFORCE on our socket; false when not root or the fd cannot be found. */
export function forceRcvbuf(portId: number, bytes: number): boolean {
  const fd = findNetlinkFd(portId);
  if (fd === null) return false;
  const val = Buffer.alloc(4);
  val.writeInt32LE(bytes);
  return (c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, val, 4) as number) === 0;
}
