// The build for kernels before 6.3: it cannot read skb->dev, so user space tells it each port's
// state. The same frames, the same counters; "forwarding" is whatever the map says at the frame.
import { afterEach, describe, expect, it } from 'vitest';
import { BR_STATES, STATE_NOT_BRIDGE_PORT } from '../../src/bpf/abi.js';
import { BpfCollection } from '../../src/bpf/loader.js';
import { BPF_OBJECT_STATEMAP } from '../../src/paths.js';
import { ipv4Frame, mac } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { btfHas, closeAllBpf, loadBpf, requires } from '../helpers/kernel.js';
import { cleanupAll, tempStateDir, TestNetns, waitFor } from '../helpers/netns.js';

const GUEST = mac('52:54:00:00:5e:01');
const FORWARDING = BR_STATES.indexOf('forwarding');
let guest: Guest | undefined;
afterEach(() => {
  closeAllBpf();
  guest?.close();
  guest = undefined;
  cleanupAll();
});

describe('port state from a map (the build for kernels without bpf_cast_to_kern_ctx)', () => {
  it('judges each frame by the state user space last wrote', async (ctx) => {
    requires(ctx, 'bpf', 'tun');
    const ns = new TestNetns('smap');
    const g = (guest = new Guest(ns, 'tap0', GUEST));
    const bpf = loadBpf(ns, { portState: 'netlink' });
    expect(bpf.portState).toBe('netlink');
    ns.run(() => bpf.attach(g.ifindex, 'tap0'));
    const frames = (n: number) => waitFor(`${n} frames`, () => bpf.mac(g.ifindex, GUEST)?.frames === n);

    g.announce(2); // no state written yet: not a bridge port
    await frames(2);
    expect(bpf.mac(g.ifindex, GUEST)).toMatchObject({ unfwdFrames: 2, firstFwdNs: 0n, firstState: STATE_NOT_BRIDGE_PORT });

    bpf.setPortState(g.ifindex, BR_STATES.indexOf('learning'));
    g.send(ipv4Frame(GUEST));
    await frames(3);
    expect(bpf.mac(g.ifindex, GUEST)).toMatchObject({ unfwdFrames: 3, firstFwdNs: 0n });

    bpf.setPortState(g.ifindex, FORWARDING);
    g.send(ipv4Frame(GUEST), ipv4Frame(GUEST));
    await frames(5);
    const fwd = bpf.mac(g.ifindex, GUEST)!;
    expect(fwd.unfwdFrames).toBe(3);
    expect(fwd.firstFwdNs).toBeGreaterThan(fwd.lastUnfwdNs);

    bpf.setPortState(g.ifindex, null); // left the bridge
    g.send(ipv4Frame(GUEST));
    await frames(6);
    expect(bpf.mac(g.ifindex, GUEST)!.unfwdFrames).toBe(4);
  });

  it('auto picks the kernel build where the kernel has the kfunc, and setPortState is then a no-op', (ctx) => {
    requires(ctx, 'kfunc');
    const bpf = BpfCollection.load({ stateDir: tempStateDir() });
    try {
      expect(bpf.portState).toBe('kernel');
      expect(bpf.fallbackReason).toBe('');
      expect(bpf.setPortState(7, FORWARDING)).toBe(false);
    } finally {
      bpf.close();
    }
  });

  it('auto picks the map build where the kernel lacks the kfunc (before 6.3), and says why', (ctx) => {
    requires(ctx, 'statemap');
    // the kernel's BTF, not our loader, is the witness: kfuncs are FUNCs in vmlinux BTF
    if (btfHas('bpf_cast_to_kern_ctx')) ctx.skip('this kernel has bpf_cast_to_kern_ctx: auto takes the kernel build here (the next test forces the fallback)');
    const bpf = BpfCollection.load({ stateDir: tempStateDir() });
    try {
      expect(bpf.portState).toBe('netlink');
      expect(bpf.fallbackReason).toMatch(/^load bpf object .*bridgewatch\.bpf\.o: /);
      expect(bpf.setPortState(7, FORWARDING)).toBe(true);
    } finally {
      bpf.close();
    }
  });

  it('auto falls back to the map build when the kernel build does not load, and says why', (ctx) => {
    requires(ctx, 'bpf');
    // a stand-in for a kernel without the kfunc: the kernel build is not loadable here
    const dir = tempStateDir();
    const bpf = BpfCollection.load({ stateDir: dir, objectPath: `${dir}/kernel-build.bpf.o`, statemapPath: BPF_OBJECT_STATEMAP });
    try {
      expect(bpf.portState).toBe('netlink');
      expect(bpf.fallbackReason).toBe(`open bpf object ${dir}/kernel-build.bpf.o: no such file (run npm run build:bpf)`);
    } finally {
      bpf.close();
    }
    // without a twin to fall back to, the first error stands
    expect(() => BpfCollection.load({ stateDir: dir, objectPath: `${dir}/kernel-build.bpf.o` })).toThrow(/no such file/);
  });
});
