// Wait budgets (how long to wait for something to happen, never an asserted latency) stretch by
// BRIDGEWATCH_TEST_TIME_SCALE: the kernel-matrix VM runs Node under TCG, 10-100x slower.
const raw = Number(process.env.BRIDGEWATCH_TEST_TIME_SCALE ?? '1');
export const TIME_SCALE = Number.isFinite(raw) && raw >= 1 ? raw : 1;

export const scaled = (ms: number): number => Math.round(ms * TIME_SCALE);
