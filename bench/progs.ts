// The programs a benchmark compares, loaded and attached the same way: a no-op TC program, our
// object, or an object from another build (--baseline). Bench-only libbpf calls (run-time
// statistics) are declared here, not in src/bpf/libbpf.ts, which holds what the daemon uses.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';
import { destroyClsact, libbpf, tcHook, tcOpts, testRun } from '../src/bpf/libbpf.js';
import { PACKAGE_ROOT } from '../src/paths.js';

const BPF_STATS_RUN_TIME = 0;
const PROG_INFO_SIZE = 232; // struct bpf_prog_info up to verified_insns (Linux 5.16 uapi and later)
const bench = (() => {
  const l = koffi.load('libbpf.so.1');
  return {
    enable_stats: l.func('int bpf_enable_stats(int type)'),
    obj_get_info_by_fd: l.func('int bpf_obj_get_info_by_fd(int fd, _Inout_ uint8_t *info, _Inout_ uint32_t *len)'),
  };
})();
const libc = koffi.load('libc.so.6');
const close = libc.func('int close(int fd)');

/** A loaded TC program: its fd, and a close() that unloads what this module loaded. */
export interface Prog {
  readonly name: string;
  readonly fd: number;
  /** fd of one of its maps */
  map(name: string): number;
  close(): void;
}

/** Load the first program named tc_ingress of an object as is (no contract check, no tuning). */
export function loadRaw(name: string, path: string): Prog {
  if (!existsSync(path)) throw new Error(`load ${name}: ${path} does not exist`);
  const l = libbpf();
  const obj = l.object_open_file(path, null);
  if (!obj) throw new Error(`load ${name}: cannot open ${path}`);
  const rc = l.object_load(obj) as number;
  if (rc < 0) {
    l.object_close(obj);
    throw new Error(`load ${name}: ${path}: error ${-rc}`);
  }
  const map = (m: string) => {
    const found = l.find_map(obj, m);
    if (!found) throw new Error(`${name}: no map ${m} in ${path}`);
    return l.map_fd(found) as number;
  };
  return { name, fd: l.prog_fd(l.find_prog(obj, 'tc_ingress')) as number, map, close: () => l.object_close(obj) };
}

/** bench/noop.bpf.c, built into `dir`. */
export function loadNoop(dir: string): Prog {
  const out = join(dir, 'noop.bpf.o');
  const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${arch}-linux-gnu`, '-c', join(PACKAGE_ROOT, 'bench/noop.bpf.c'), '-o', out]);
  return loadRaw('no-op', out);
}

// attached as a clsact filter (what the brief's 3169k/2786k/2314k figures used), one at a time
const HANDLE = 0xbe;
const PRIORITY = 0xbe;

/** Attach fd to ifindex's ingress in the calling thread's namespace; returns its detach. */
export function attachTc(ifindex: number, fd: number): () => void {
  const l = libbpf();
  const hook = tcHook(ifindex);
  const rc = l.tc_hook_create(hook) as number;
  if (rc < 0 && rc !== -17) throw new Error(`attach to ifindex ${ifindex}: clsact: error ${-rc}`);
  const arc = l.tc_attach(hook, tcOpts({ progFd: fd, handle: HANDLE, priority: PRIORITY })) as number;
  if (arc < 0) {
    destroyClsact(ifindex);
    throw new Error(`attach to ifindex ${ifindex}: filter: error ${-arc}`);
  }
  return () => {
    l.tc_detach(hook, tcOpts({ handle: HANDLE, priority: PRIORITY }));
    destroyClsact(ifindex);
  };
}

/** ns per run of fd on `frame`, BPF_PROG_TEST_RUN on device `ifindex` (0: loopback), `repeat` times. */
export function runNs(fd: number, frame: Buffer, ifindex: number, repeat: number): number {
  let ctx: Buffer | null = null;
  if (ifindex) {
    ctx = Buffer.alloc(192); // struct __sk_buff; ifindex at offset 40
    ctx.writeUInt32LE(ifindex, 40);
  }
  return testRun(fd, frame, ctx, repeat).durationNs;
}

/** The kernel's run-time statistics of a program (counting only while stats are enabled). */
export function progStats(fd: number): { runTimeNs: bigint; runCnt: bigint } {
  const info = Buffer.alloc(PROG_INFO_SIZE);
  const len = [PROG_INFO_SIZE];
  const rc = bench.obj_get_info_by_fd(fd, info, len) as number;
  if (rc < 0) throw new Error(`prog info of fd ${fd}: error ${-rc}`);
  return { runTimeNs: info.readBigUInt64LE(192), runCnt: info.readBigUInt64LE(200) };
}

/** Run fn with kernel.bpf_stats_enabled on (held by an fd: off again when fn ends or we die). */
export async function withBpfStats<T>(fn: () => Promise<T>): Promise<T> {
  const fd = bench.enable_stats(BPF_STATS_RUN_TIME) as number;
  if (fd < 0) throw new Error(`enable BPF run-time stats: error ${-fd}`);
  try {
    return await fn();
  } finally {
    close(fd);
  }
}
