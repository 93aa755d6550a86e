// The TC hooks bridgewatch owns: the guest-port program on each guest port's ingress, and the
// convergence programs on both sides of each uplink; as clsact filters with fixed handles (the
// default) or tcx links. Every attachment is released by closeAll(); clsact qdiscs it created
// are journaled (owned-hooks.ts) so a restart after a crash removes what the last run left, and
// a hook someone else created is never removed.
import { BridgewatchError, errnoError } from '../errors.js';
import { c, strerror } from '../sys/libc.js';
import type { Attachment } from '../observe-types.js';
import {
  BPF_TC_EGRESS,
  BPF_TC_F_REPLACE,
  BPF_TC_INGRESS,
  BPF_TCX_EGRESS,
  BPF_TCX_INGRESS,
  destroyClsact,
  libbpf,
  progQueryCount,
  progQueryOpts,
  quietly,
  tcHook,
  tcOpts,
  tcOptsProgId,
} from './libbpf.js';
import { OwnedHooks } from './owned-hooks.js';

// fixed clsact filter identity, so a restart replaces our own filter instead of stacking one
export const TC_HANDLE = 0xb3d0;
export const TC_PRIORITY = 0xb3d0 & 0xffff;
// the uplink programs' filters (convergence), on both sides of an uplink
export const UPLINK_HANDLE = 0xb3d1;
export const UPLINK_PRIORITY = 0xb3d1 & 0xffff;

export type AttachMode = 'auto' | 'tcx' | 'tc';

/*
 * Why `auto` means clsact, not tcx, even where tcx exists (Linux 6.6+): every tcx link attach
 * and release swaps the device's bpf_mprog_entry and then waits a full RCU grace period while
 * holding rtnl (kernel/bpf/tcx.c: tcx_link_attach() takes rtnl_lock() and calls
 * tcx_link_prog_attach() -> tcx_entry_update() + tcx_entry_sync(); tcx_link_release() does the
 * same; include/net/tcx.h: tcx_entry_sync() is synchronize_rcu()). That is ~11 ms of rtnl per
 * port here, during which every other rtnetlink user (libvirt, nova, ip) waits: 200 taps took
 * 10x longer to create. A clsact filter waits at most an expedited grace period
 * (net/sched/sch_generic.c: mini_qdisc_pair_swap() calls synchronize_rcu_expedited() when the
 * qdisc is younger than a grace period), ~0.2 ms, and the qdisc itself none. `--attach tcx`
 * stays available. bench/attach.ts measures both.
 */

export const sys = (what: string, e: number) => errnoError(what, e, strerror);

interface Live extends Attachment {
  fd?: number; // tcx link
  createdHook?: boolean; // tc: we created the clsact qdisc
}

interface LiveUplink {
  ifname: string;
  fds?: [number, number]; // tcx links: ingress, egress
}

export class TcHooks {
  private readonly live = new Map<number, Live>();
  private readonly uplinks = new Map<number, LiveUplink>();
  private readonly ownedHooks: OwnedHooks;

  constructor(
    private readonly progFd: number,
    private readonly uplinkFds: { in: number; out: number },
    private attachMode: 'tcx' | 'tc',
    stateDir: string,
    private readonly auto: boolean,
  ) {
    this.ownedHooks = new OwnedHooks(stateDir);
  }

  /** How new attachments are made; under `auto`, clsact until the kernel turns out to lack it. */
  get mode(): 'tcx' | 'tc' {
    return this.attachMode;
  }

  attachments(): Attachment[] {
    return [...this.live.values()].map(({ ifindex, ifname, mode }) => ({ ifindex, ifname, mode }));
  }


  /** Attach to ifindex's ingress; attaching again replaces ours, never stacks a second one. */
  attach(ifindex: number, ifname = `ifindex ${ifindex}`): Attachment {
    if (this.live.has(ifindex)) this.detach(ifindex);
    if (!Number.isInteger(ifindex) || ifindex <= 0) throw new BridgewatchError('ENODEV', `attach ${this.mode} ingress on ${ifname}: invalid ifindex ${ifindex}`);
    let live: Live;
    try {
      live = this.mode === 'tcx' ? this.attachTcx(ifindex, ifname) : this.attachTc(ifindex, ifname);
    } catch (e) {
      // auto on a kernel built without clsact or cls_bpf: tcx, if it has that
      const missing = (e as BridgewatchError).errno === 2 || (e as BridgewatchError).errno === 95;
      if (!this.auto || this.mode !== 'tc' || !missing || !tcxSupported()) throw e;
      this.attachMode = 'tcx';
      live = this.attachTcx(ifindex, ifname);
    }
    this.live.set(ifindex, live);
    return { ifindex, ifname, mode: live.mode };
  }

  private attachTcx(ifindex: number, ifname: string): Live {
    this.removeStaleFilter(ifindex); // left by an earlier run in tc mode
    const fd = libbpf().link_create(this.progFd, ifindex, BPF_TCX_INGRESS, null) as number;
    if (fd < 0) throw sys(`attach tcx ingress on ${ifname}`, -fd);
    return { ifindex, ifname, mode: 'tcx', fd };
  }

  private attachTc(ifindex: number, ifname: string): Live {
    const l = libbpf();
    const what = `attach tc ingress on ${ifname}`;
    const hook = tcHook(ifindex);
    // EEXIST (someone's clsact, or ours from a crashed run) is an answer, not worth libbpf's complaint
    const rc = quietly(() => l.tc_hook_create(hook) as number);
    if (rc < 0 && rc !== -17) throw sys(what, -rc);
    // recorded before anything else can fail, or the process die
    if (rc === 0) this.ownedHooks.mark(ifindex, true);
    const opts = tcOpts({ progFd: this.progFd, flags: BPF_TC_F_REPLACE, handle: TC_HANDLE, priority: TC_PRIORITY });
    const arc = l.tc_attach(hook, opts) as number;
    if (arc < 0) {
      if (rc === 0) {
        destroyClsact(ifindex);
        this.ownedHooks.mark(ifindex, false);
      }
      throw sys(what, -arc);
    }
    return { ifindex, ifname, mode: 'tc', createdHook: this.ownedHooks.has(ifindex) };
  }

  /** Detach ours from ifindex; a device already gone is not an error. */
  detach(ifindex: number): void {
    const live = this.live.get(ifindex);
    if (!live) return;
    this.live.delete(ifindex);
    if (live.fd !== undefined) {
      c.close(live.fd); // the kernel removes a tcx link when its last fd closes
      return;
    }
    // our own qdisc goes, and our filter with it: one rtnl round trip instead of two (unless the
    // uplink programs share it: --observe-uplinks)
    const dropHook = live.createdHook && !this.uplinks.has(ifindex);
    const rc = dropHook
      ? destroyClsact(ifindex)
      : (libbpf().tc_detach(tcHook(ifindex), tcOpts({ handle: TC_HANDLE, priority: TC_PRIORITY })) as number);
    if (dropHook) this.ownedHooks.mark(ifindex, false);
    if (rc < 0 && rc !== -2 && rc !== -19 && rc !== -22) throw sys(`detach tc ingress on ${live.ifname}`, -rc);
  }

  /** Forget a device that the kernel already removed (its hooks died with it). */
  forget(ifindex: number): void {
    const up = this.uplinks.get(ifindex);
    this.uplinks.delete(ifindex);
    for (const fd of up?.fds ?? []) c.close(fd);
    const live = this.live.get(ifindex);
    this.live.delete(ifindex);
    if (live?.fd !== undefined) c.close(live.fd);
    if (live || up) this.ownedHooks.mark(ifindex, false);
  }

  /** Uplinks carrying the convergence programs. */
  uplinkAttachments(): { ifindex: number; ifname: string }[] {
    return [...this.uplinks].map(([ifindex, u]) => ({ ifindex, ifname: u.ifname }));
  }

  /**
   * The convergence programs on both sides of an uplink (bpf/uplink.bpf.h): idle unless a guest
   * MAC awaits the fabric. Attaching again replaces ours.
   */
  attachUplink(ifindex: number, ifname = `ifindex ${ifindex}`): void {
    if (this.uplinks.has(ifindex)) this.detachUplink(ifindex);
    if (this.mode === 'tcx') {
      const l = libbpf();
      if (!this.live.has(ifindex)) this.removeStaleFilter(ifindex); // left by an earlier run in tc mode
      const fin = l.link_create(this.uplinkFds.in, ifindex, BPF_TCX_INGRESS, null) as number;
      if (fin < 0) throw sys(`attach tcx ingress (uplink) on ${ifname}`, -fin);
      const fout = l.link_create(this.uplinkFds.out, ifindex, BPF_TCX_EGRESS, null) as number;
      if (fout < 0) {
        c.close(fin);
        throw sys(`attach tcx egress (uplink) on ${ifname}`, -fout);
      }
      this.uplinks.set(ifindex, { ifname, fds: [fin, fout] });
      return;
    }
    const l = libbpf();
    const rc = quietly(() => l.tc_hook_create(tcHook(ifindex)) as number);
    if (rc < 0 && rc !== -17) throw sys(`attach tc (uplink) on ${ifname}`, -rc);
    if (rc === 0) this.ownedHooks.mark(ifindex, true);
    for (const [side, fd] of [[BPF_TC_INGRESS, this.uplinkFds.in], [BPF_TC_EGRESS, this.uplinkFds.out]] as const) {
      const opts = tcOpts({ progFd: fd, flags: BPF_TC_F_REPLACE, handle: UPLINK_HANDLE, priority: UPLINK_PRIORITY });
      const arc = l.tc_attach(tcHook(ifindex, side), opts) as number;
      if (arc < 0) {
        this.uplinks.set(ifindex, { ifname }); // so the detach below removes what did attach
        this.detachUplink(ifindex);
        throw sys(`attach tc ${side === BPF_TC_EGRESS ? 'egress' : 'ingress'} (uplink) on ${ifname}`, -arc);
      }
    }
    this.uplinks.set(ifindex, { ifname });
  }

  /** Remove the convergence programs from an uplink; a device already gone is not an error. */
  detachUplink(ifindex: number): void {
    const up = this.uplinks.get(ifindex);
    if (!up) return;
    this.uplinks.delete(ifindex);
    if (up.fds) {
      for (const fd of up.fds) c.close(fd);
      return;
    }
    const l = libbpf();
    const gone = (rc: number) => rc === -2 || rc === -19 || rc === -22;
    if (this.ownedHooks.has(ifindex) && !this.live.has(ifindex)) {
      const rc = destroyClsact(ifindex);
      this.ownedHooks.mark(ifindex, false);
      if (rc < 0 && !gone(rc)) throw sys(`detach tc (uplink) on ${up.ifname}`, -rc);
      return;
    }
    for (const side of [BPF_TC_INGRESS, BPF_TC_EGRESS]) {
      const rc = quietly(() => l.tc_detach(tcHook(ifindex, side), tcOpts({ handle: UPLINK_HANDLE, priority: UPLINK_PRIORITY })) as number);
      if (rc < 0 && !gone(rc)) throw sys(`detach tc (uplink) on ${up.ifname}`, -rc);
    }
  }

  /**
   * Remove uplink filters with our handle that an earlier run in tc mode left (it crashed, or
   * convergence is off now); a clsact qdisc it created is the journal's to remove.
   */
  removeStaleUplink(ifindex: number): void {
    if (this.uplinks.get(ifindex)?.fds === undefined && this.uplinks.has(ifindex)) return; // ours, live, in tc mode
    const l = libbpf();
    for (const side of [BPF_TC_INGRESS, BPF_TC_EGRESS])
      quietly(() => l.tc_detach(tcHook(ifindex, side), tcOpts({ handle: UPLINK_HANDLE, priority: UPLINK_PRIORITY })));
  }

  /** Program ids of ours on an uplink, by side (tests and `status`). */
  queryUplink(ifindex: number): { ingress: boolean; egress: boolean } {
    const l = libbpf();
    const has = (side: number) => {
      const opts = tcOpts({ handle: UPLINK_HANDLE, priority: UPLINK_PRIORITY });
      return quietly(() => l.tc_query(tcHook(ifindex, side), opts) as number) === 0 && tcOptsProgId(opts) !== 0;
    };
    return { ingress: has(BPF_TC_INGRESS), egress: has(BPF_TC_EGRESS) };
  }

  /** Programs on ifindex's ingress: tcx programs and our clsact filter. */
  query(ifindex: number): { tcx: number; tcFilter: boolean } {
    const l = libbpf();
    const q = progQueryOpts();
    const rc = l.prog_query_opts(ifindex, BPF_TCX_INGRESS, q) as number;
    const tcx = rc < 0 ? 0 : progQueryCount(q);
    const opts = tcOpts({ handle: TC_HANDLE, priority: TC_PRIORITY });
    const tc = quietly(() => l.tc_query(tcHook(ifindex), opts) as number);
    return { tcx, tcFilter: tc === 0 && tcOptsProgId(opts) !== 0 };
  }

  private removeStaleFilter(ifindex: number): void {
    const l = libbpf();
    // usually there is no clsact at all: the kernel's complaint is the expected answer
    quietly(() => l.tc_detach(tcHook(ifindex), tcOpts({ handle: TC_HANDLE, priority: TC_PRIORITY })));
    this.removeStaleUplink(ifindex);
    // tcx mode: nothing of ours uses a clsact qdisc, so one the journal says we made is stale
    if (this.ownedHooks.has(ifindex)) {
      destroyClsact(ifindex);
      this.ownedHooks.mark(ifindex, false);
    }
  }

  /** Release every attachment (a device gone meanwhile is only forgotten), then the journal. */
  closeAll(): void {
    for (const ifindex of [...this.uplinks.keys()]) {
      try {
        this.detachUplink(ifindex);
      } catch {
        this.forget(ifindex);
      }
    }
    for (const ifindex of [...this.live.keys()]) {
      try {
        this.detach(ifindex);
      } catch {
        this.forget(ifindex); // device vanished under us: nothing left to release
      }
    }
    this.ownedHooks.close();
  }
}

/** Whether the kernel knows tcx links (BPF_TCX_INGRESS, Linux 6.6+). */
export function tcxSupported(): boolean {
  const q = progQueryOpts();
  // loopback always exists; EINVAL means the attach type is unknown to this kernel
  return (libbpf().prog_query_opts(1, BPF_TCX_INGRESS, q) as number) !== -22;
}
