// Thin FFI to the few libc calls Node does not expose: ioctl (tun), setns, AF_PACKET sockets.
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

export const c = {
  open: libc.func('int open(const char *path, int flags)'),
  close: libc.func('int close(int fd)'),
  ioctl: libc.func('int ioctl(int fd, unsigned long req, void *arg)'),
  write: libc.func('long write(int fd, const void *buf, size_t count)'),
  read: libc.func('long read(int fd, void *buf, size_t count)'),
  setns: libc.func('int setns(int fd, int nstype)'),
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  bind: libc.func('int bind(int fd, const void *addr, unsigned int len)'),
  sendto: libc.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, unsigned int alen)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, const void *val, unsigned int len)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
  strerror: libc.func('const char *strerror(int errnum)'),
  if_nametoindex: libc.func('unsigned int if_nametoindex(const char *name)'),
};

export const errno = (): number => koffi.errno();
export const strerror = (e: number): string => c.strerror(e) as string;

export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const CLONE_NEWNET = 0x40000000;
