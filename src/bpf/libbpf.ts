// FFI declarations for the system libbpf.so.1 (1.1+), and nothing else: every libbpf call goes
// through here. Option structs are passed as Buffers laid out by hand (x86_64/arm64 LP64).
import koffi from 'koffi';

export const BPF_TCX_INGRESS = 46; // not in libbpf 1.1 / older uapi headers
export const BPF_TCX_EGRESS = 47;
export const BPF_TC_INGRESS = 1;
export const BPF_TC_EGRESS = 2;
export const BPF_TC_F_REPLACE = 1;
export const BTF_KIND_STRUCT = 4;
export const BTF_KIND_DATASEC = 15;

let lib: koffi.IKoffiLib | undefined;
function load(): koffi.IKoffiLib {
  lib ??= koffi.load('libbpf.so.1');
  return lib;
}

koffi.opaque('bpf_object')
koffi.opaque('bpf_map')
koffi.opaque('bpf_program')
koffi.opaque('btf')
koffi.opaque('ring_buffer')
export const RingBufSampleFn = koffi.proto('int bw_ring_buffer_sample_fn(void *ctx, void *data, size_t size)');
// libbpf_print_fn_t; a va_list reaches a callee as a pointer on LP64 ABIs, so void * carries it
const PrintFn = koffi.proto('int bw_libbpf_print_fn(int level, const char *fmt, void *args)');

function bind() {
  const l = load();
  return {
    object_open_file: l.func('bpf_object *bpf_object__open_file(const char *path, void *opts)'),
    object_load: l.func('int bpf_object__load(bpf_object *obj)'),
    object_close: l.func('void bpf_object__close(bpf_object *obj)'),
    object_btf: l.func('btf *bpf_object__btf(bpf_object *obj)'),
    find_map: l.func('bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)'),
    find_prog: l.func('bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)'),
    prog_fd: l.func('int bpf_program__fd(bpf_program *prog)'),
    map_fd: l.func('int bpf_map__fd(bpf_map *map)'),
    map_set_max_entries: l.func('int bpf_map__set_max_entries(bpf_map *map, uint32_t n)'),
    map_max_entries: l.func('uint32_t bpf_map__max_entries(bpf_map *map)'),
    map_key_size: l.func('uint32_t bpf_map__key_size(bpf_map *map)'),
    map_value_size: l.func('uint32_t bpf_map__value_size(bpf_map *map)'),
    map_initial_value: l.func('void *bpf_map__initial_value(bpf_map *map, _Out_ size_t *psize)'),
    btf_find_by_name_kind: l.func('int btf__find_by_name_kind(btf *btf, const char *name, uint32_t kind)'),
    btf_type_by_id: l.func('void *btf__type_by_id(btf *btf, uint32_t id)'),
    btf_name_by_offset: l.func('const char *btf__name_by_offset(btf *btf, uint32_t off)'),
    btf_resolve_size: l.func('int64_t btf__resolve_size(btf *btf, uint32_t id)'),
    map_lookup_elem: l.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
    map_update_elem: l.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    map_delete_elem: l.func('int bpf_map_delete_elem(int fd, const void *key)'),
    map_get_next_key: l.func('int bpf_map_get_next_key(int fd, const void *key, void *next)'),
    map_lookup_batch: l.func(
      'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, void *opts)',
    ),
    link_create: l.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, void *opts)'),
    prog_query_opts: l.func('int bpf_prog_query_opts(int target_fd, int type, void *opts)'),
    tc_hook_create: l.func('int bpf_tc_hook_create(void *hook)'),
    tc_hook_destroy: l.func('int bpf_tc_hook_destroy(void *hook)'),
    tc_attach: l.func('int bpf_tc_attach(const void *hook, void *opts)'),
    tc_detach: l.func('int bpf_tc_detach(const void *hook, const void *opts)'),
    tc_query: l.func('int bpf_tc_query(const void *hook, void *opts)'),
    prog_test_run_opts: l.func('int bpf_prog_test_run_opts(int prog_fd, void *opts)'),
    num_possible_cpus: l.func('int libbpf_num_possible_cpus(void)'),
    set_print: l.func('void *libbpf_set_print(void *fn)'),
    ring_buffer_new: l.func(
      `ring_buffer *ring_buffer__new(int map_fd, ${'bw_ring_buffer_sample_fn'} *sample_cb, void *ctx, void *opts)`,
    ),
    ring_buffer_consume: l.func('int ring_buffer__consume(ring_buffer *rb)'),
    ring_buffer_free: l.func('void ring_buffer__free(ring_buffer *rb)'),
  };
}

export type Libbpf = ReturnType<typeof bind>;
let bound: Libbpf | undefined;
/** The bound library; throws if libbpf.so.1 is missing (callers turn that into pcap mode). */
export function libbpf(): Libbpf {
  bound ??= bind();
  return bound;
}

export type LibbpfLevel = 'warn' | 'info' | 'debug';
const LEVELS: LibbpfLevel[] = ['warn', 'info', 'debug']; // enum libbpf_print_level
let printer: unknown;

/**
 * Send libbpf's own messages to `sink` instead of stderr: the daemon logs them at debug, since
 * on an older kernel most of them are the expected answers of feature probes.
 */
export function routeLibbpfPrint(sink: (level: LibbpfLevel, msg: string) => void): void {
  const l = libbpf();
  const vsnprintf = koffi.load('libc.so.6').func('int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *args)');
  const buf = Buffer.alloc(1024);
  if (printer) koffi.unregister(printer as koffi.IKoffiRegisteredCallback);
  printer = koffi.register((level: number, fmt: string, args: unknown) => {
    const n = vsnprintf(buf, buf.length, fmt, args) as number;
    const msg = buf.toString('utf8', 0, Math.max(0, Math.min(n, buf.length - 1))).trimEnd();
    if (msg) sink(LEVELS[level] ?? 'debug', msg);
    return 0;
  }, koffi.pointer(PrintFn));
  l.set_print(printer);
}

/** Run fn with libbpf's printing off (for probes whose failure is the expected answer). */
export function quietly<T>(fn: () => T): T {
  const l = libbpf();
  const prev = l.set_print(null);
  try {
    return fn();
  } finally {
    l.set_print(prev);
  }
}

// struct bpf_tc_hook { size_t sz; int ifindex; enum attach_point; __u32 parent; } = 24 bytes
export function tcHook(ifindex: number, attachPoint = BPF_TC_INGRESS): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeInt32LE(ifindex, 8);
  b.writeUInt32LE(attachPoint, 12);
  return b;
}

// struct bpf_tc_opts { size_t sz; int prog_fd; __u32 flags, prog_id, handle, priority; } = 32 bytes
export function tcOpts(o: { progFd?: number; flags?: number; handle: number; priority: number }): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(32n, 0);
  b.writeInt32LE(o.progFd ?? 0, 8);
  b.writeUInt32LE(o.flags ?? 0, 12);
  b.writeUInt32LE(o.handle, 20);
  b.writeUInt32LE(o.priority, 24);
  return b;
}
export const tcOptsProgId = (b: Buffer): number => b.readUInt32LE(16);

/** Remove the clsact qdisc. Only INGRESS|EGRESS does that: bpf_tc_hook_destroy on a single
 *  attach point merely flushes that side's filters (everyone's) and leaves the qdisc. */
export const destroyClsact = (ifindex: number): number =>
  libbpf().tc_hook_destroy(tcHook(ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS)) as number;

// struct bpf_prog_query_opts { size_t sz; u32 query_flags, attach_flags; u32 *prog_ids; u32 prog_cnt; u32 *prog_attach_flags; } = 40
export function progQueryOpts(): Buffer {
  const b = Buffer.alloc(40);
  b.writeBigUInt64LE(40n, 0);
  return b;
}
export const progQueryCount = (b: Buffer): number => b.readUInt32LE(24);

/** Native memory that C may keep a pointer to; `buf` is a live view of it. Free with free(). */
export class NativeMem {
  readonly ptr: unknown;
  readonly buf: Buffer;
  readonly addr: bigint;
  constructor(len: number) {
    this.ptr = koffi.alloc('uint8_t', Math.max(len, 1));
    this.buf = Buffer.from(koffi.view(this.ptr, Math.max(len, 1)));
    this.buf.fill(0);
    this.addr = koffi.address(this.ptr);
  }
  free(): void {
    koffi.free(this.ptr);
  }
}

// struct bpf_test_run_opts { size_t sz; data_in, data_out; u32 size_in, size_out; ctx_in, ctx_out;
//   u32 ctx_size_in, ctx_size_out, retval; int repeat; u32 duration, flags, cpu, batch_size; } = 80
export interface TestRun {
  retval: number;
  durationNs: number;
  dataOut: Buffer;
}
export function testRun(progFd: number, data: Buffer, ctx: Buffer | null, repeat = 1): TestRun {
  const opts = Buffer.alloc(80);
  const dataIn = new NativeMem(data.length);
  const dataOut = new NativeMem(data.length + 256);
  const ctxIn = ctx ? new NativeMem(ctx.length) : undefined;
  try {
    data.copy(dataIn.buf);
    opts.writeBigUInt64LE(80n, 0);
    opts.writeBigUInt64LE(dataIn.addr, 8);
    opts.writeBigUInt64LE(dataOut.addr, 16);
    opts.writeUInt32LE(data.length, 24);
    opts.writeUInt32LE(dataOut.buf.length, 28);
    if (ctx && ctxIn) {
      ctx.copy(ctxIn.buf);
      opts.writeBigUInt64LE(ctxIn.addr, 32);
      opts.writeUInt32LE(ctx.length, 48);
    }
    opts.writeInt32LE(repeat, 60);
    const rc = libbpf().prog_test_run_opts(progFd, opts) as number;
    if (rc < 0) throw Object.assign(new Error('test_run'), { errno: -rc });
    const outLen = opts.readUInt32LE(28);
    return {
      retval: opts.readInt32LE(56),
      durationNs: opts.readUInt32LE(64),
      dataOut: Buffer.from(dataOut.buf.subarray(0, outLen)),
    };
  } finally {
    dataIn.free();
    dataOut.free();
    ctxIn?.free();
  }
}
