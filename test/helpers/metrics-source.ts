// A MetricsSource with nothing behind it, for tests whose subject is not the collected gauges.
import type { MetricsSource } from '../../src/metrics/metrics.js';

export const emptySource: MetricsSource = {
  refresh: () => undefined,
  ports: () => [],
  bridges: () => [],
  macCount: () => 0,
  maps: () => [],
  programsAttached: () => 0,
  bpfEventsDropped: () => 0,
  ready: () => true,
  refused: () => ({ ports: 0, macs: 0, timeline: 0 }),
};
