// Pure verdict rules, one place: what "late", "on time" and "silent" mean.
export type Verdict = 'pending' | 'on_time' | 'late' | 'silent';

/** Severity order for a port's overall verdict: the worst of its guest MACs. */
const RANK: Record<Verdict, number> = { pending: 0, on_time: 1, silent: 2, late: 3 };
export const worst = (vs: Iterable<Verdict>): Verdict => {
  let out: Verdict = 'pending';
  for (const v of vs) if (RANK[v] > RANK[out]) out = v;
  return out;
};

/**
 * The verdict of a MAC's first frame: forwarding at that instant means the network heard the
 * guest from its very first frame; otherwise frames were dying on the port (late).
 */
export const firstFrameVerdict = (forwarding: boolean): Verdict => (forwarding ? 'on_time' : 'late');

/**
 * Silent: the port was seen coming up live (not found at start), has been forwarding for
 * `silentAfterNs`, and a guest MAC that talks on it (it is tracked because it sent frames)
 * never announced itself.
 */
export function isSilent(o: {
  live: boolean;
  forwardingSinceNs: bigint | undefined;
  nowNs: bigint;
  silentAfterNs: bigint;
  announcements: number;
}): boolean {
  if (!o.live || o.forwardingSinceNs === undefined) return false;
  return o.announcements === 0 && o.nowNs - o.forwardingSinceNs >= o.silentAfterNs;
}
