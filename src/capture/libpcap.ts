// FFI declarations for the system libpcap (1.x), and nothing else: every libpcap call of the
// capture fallback goes through here. We bind libpcap ourselves instead of using the `cap`
// package: `cap` gives neither the packet's kernel timestamp nor its original length, is always
// promiscuous with a 64 KiB snaplen, cannot read synchronously and reports no drop counts.
import koffi from 'koffi';

export const PCAP_ERROR_NO_SUCH_DEVICE = -5;
export const PCAP_ERROR_PERM_DENIED = -8;
export const PCAP_ERROR_IFACE_NOT_UP = -9;
export const PCAP_D_IN = 1;
export const PCAP_TSTAMP_PRECISION_NANO = 1;
export const DLT_EN10MB = 1;
/** struct pcap_pkthdr on LP64: timeval (2 x 8), caplen, len */
export const PKTHDR_SIZE = 24;

koffi.opaque('pcap_t');
export const PacketHandler = koffi.proto('void bw_pcap_handler(void *user, void *hdr, void *bytes)');

function load(): koffi.IKoffiLib {
  let first: unknown;
  for (const name of ['libpcap.so.0.8', 'libpcap.so.1']) {
    try {
      return koffi.load(name);
    } catch (e) {
      first ??= e;
    }
  }
  throw first;
}

function bind() {
  const l = load();
  return {
    lib_version: l.func('const char *pcap_lib_version(void)'),
    create: l.func('pcap_t *pcap_create(const char *dev, _Out_ uint8_t *errbuf)'),
    set_snaplen: l.func('int pcap_set_snaplen(pcap_t *p, int snaplen)'),
    set_promisc: l.func('int pcap_set_promisc(pcap_t *p, int promisc)'),
    set_immediate_mode: l.func('int pcap_set_immediate_mode(pcap_t *p, int immediate)'),
    set_buffer_size: l.func('int pcap_set_buffer_size(pcap_t *p, int size)'),
    set_tstamp_precision: l.func('int pcap_set_tstamp_precision(pcap_t *p, int precision)'),
    get_tstamp_precision: l.func('int pcap_get_tstamp_precision(pcap_t *p)'),
    activate: l.func('int pcap_activate(pcap_t *p)'),
    datalink: l.func('int pcap_datalink(pcap_t *p)'),
    setdirection: l.func('int pcap_setdirection(pcap_t *p, int dir)'),
    setnonblock: l.func('int pcap_setnonblock(pcap_t *p, int nonblock, _Out_ uint8_t *errbuf)'),
    fileno: l.func('int pcap_fileno(pcap_t *p)'),
    dispatch: l.func('int pcap_dispatch(pcap_t *p, int cnt, bw_pcap_handler *cb, void *user)'),
    stats: l.func('int pcap_stats(pcap_t *p, _Out_ uint8_t *ps)'),
    geterr: l.func('const char *pcap_geterr(pcap_t *p)'),
    statustostr: l.func('const char *pcap_statustostr(int status)'),
    close: l.func('void pcap_close(pcap_t *p)'),
  };
}

export type Libpcap = ReturnType<typeof bind>;
let bound: Libpcap | undefined;
/** The bound library; throws when no libpcap is installed. */
export function libpcap(): Libpcap {
  bound ??= bind();
  return bound;
}
