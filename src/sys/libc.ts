// Thin FFI to the few libc calls Node does not expose: ioctl (tun), setns, AF_PACKET sockets,
// and for the libpcap fallback epoll, clock_gettime, memcpy out of libpcap's ring, socket filters.
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
// struct sock_fprog, for SO_ATTACH_FILTER: the instructions are passed by pointer
koffi.struct('bw_sock_fprog', { len: 'uint16_t', filter: 'void *' });

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
  // the libpcap fallback (src/capture/)
  clock_gettime: libc.func('int clock_gettime(int clk, _Out_ uint8_t *ts)'),
  memcpy: libc.func('void *memcpy(_Out_ uint8_t *dst, void *src, size_t n)'),
  epoll_create1: libc.func('int epoll_create1(int flags)'),
  epoll_ctl: libc.func('int epoll_ctl(int epfd, int op, int fd, uint8_t *ev)'),
  epoll_wait: libc.func('int epoll_wait(int epfd, _Out_ uint8_t *evs, int max, int timeout)'),
  // glibc keeps freed memory in its arenas; this hands the free pages back (RSS)
  malloc_trim: ((): ((pad: number) => number) => {
    try {
      return libc.func('int malloc_trim(size_t pad)') as (pad: number) => number;
    } catch {
      return () => 0; // not glibc: nothing to trim this way
    }
  })(),
  attach_filter: libc.func('int setsockopt(int fd, int level, int name, const bw_sock_fprog *prog, unsigned int len)'),
};

export const errno = (): number => koffi.errno();
export const strerror = (e: number): string => c.strerror(e) as string;

export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const CLONE_NEWNET = 0x40000000;
