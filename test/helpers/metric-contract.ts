// The metric names the dashboard, the alert rules and operators depend on (issues B and C).
// One list: every test that checks an exposition, a rule or a panel against the contract uses it.
// Label values are listed where the contract fixes them; `null` means "any value".

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface ContractMetric {
  /** full name, with the `bridgewatch_` prefix; histograms by their base name */
  readonly name: string;
  readonly type: MetricType;
  /** label name -> allowed values (null: any) */
  readonly labels: Readonly<Record<string, readonly string[] | null>>;
  /** series exist only while something is so (an unconverged guest), not from the start */
  readonly onlyWhile?: string;
}

export const METRIC_PREFIX = 'bridgewatch_';

/** resolve 1 ms to 60 s and include QEMU's announce instants (0.05, 0.2, 0.45, 0.8 s) */
export const HISTOGRAM_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.45, 0.8, 1, 2.5, 5, 10, 30, 60] as const;

export const FRAME_KINDS = ['rarp', 'garp', 'na', 'legacy', 'other'] as const;
export const ANNOUNCE_MODES = ['on', 'dry-run', 'off'] as const;

/** labels Prometheus adds to every scraped series */
export const TARGET_LABELS = ['instance', 'job'] as const;

/** series Prometheus itself synthesises per target, which rules may use beside ours */
export const PROMETHEUS_SERIES = ['up'] as const;

const ANY = null;

export const METRIC_CONTRACT: readonly ContractMetric[] = [
  // daemon (issue B)
  { name: 'bridgewatch_build_info', type: 'gauge', labels: { version: ANY, kernel: ANY, mode: ['ebpf', 'pcap'] } },
  { name: 'bridgewatch_ports_watched', type: 'gauge', labels: { bridge: ANY } },
  { name: 'bridgewatch_guest_macs_tracked', type: 'gauge', labels: {} },
  { name: 'bridgewatch_port_joins_total', type: 'counter', labels: { bridge: ANY } },
  { name: 'bridgewatch_late_attach_total', type: 'counter', labels: { bridge: ANY } },
  { name: 'bridgewatch_frames_before_forwarding_total', type: 'counter', labels: { bridge: ANY, kind: FRAME_KINDS } },
  {
    name: 'bridgewatch_announcements_total',
    type: 'counter',
    labels: { bridge: ANY, kind: FRAME_KINDS, delivered: ['true', 'false'] },
  },
  { name: 'bridgewatch_attach_delay_seconds', type: 'histogram', labels: { bridge: ANY } },
  { name: 'bridgewatch_first_frame_delay_seconds', type: 'histogram', labels: { bridge: ANY } },
  { name: 'bridgewatch_silent_guests_total', type: 'counter', labels: { bridge: ANY } },
  { name: 'bridgewatch_bridge_stp_enabled', type: 'gauge', labels: { bridge: ANY } },
  { name: 'bridgewatch_bridge_forward_delay_seconds', type: 'gauge', labels: { bridge: ANY } },
  { name: 'bridgewatch_bpf_events_dropped_total', type: 'counter', labels: {} },
  { name: 'bridgewatch_attach_errors_total', type: 'counter', labels: { reason: ANY } },
  { name: 'bridgewatch_port_info', type: 'gauge', labels: { bridge: ANY, port: ANY, kind: ANY } },
  { name: 'bridgewatch_bpf_map_entries', type: 'gauge', labels: { map: ANY } },
  { name: 'bridgewatch_bpf_map_max_entries', type: 'gauge', labels: { map: ANY } },
  { name: 'bridgewatch_bpf_programs_attached', type: 'gauge', labels: {} },
  { name: 'bridgewatch_scrape_duration_seconds', type: 'gauge', labels: {} },
  { name: 'bridgewatch_tracker_refused_total', type: 'counter', labels: { what: ['ports', 'macs', 'timeline'] } },
  { name: 'bridgewatch_netlink_resyncs_total', type: 'counter', labels: {} },
  { name: 'bridgewatch_kernel_read_errors_total', type: 'counter', labels: {} },
  { name: 'bridgewatch_netlink_bad_messages_total', type: 'counter', labels: {} },
  { name: 'bridgewatch_bpf_frames_unrecorded_total', type: 'counter', labels: { reason: ['bad_source', 'port_full', 'insert_fail'] } },
  { name: 'bridgewatch_ready', type: 'gauge', labels: {} },
  // announcer (issue C)
  { name: 'bridgewatch_rarp_sent_total', type: 'counter', labels: { bridge: ANY, reason: ['late_attach', 'manual'] } },
  { name: 'bridgewatch_rarp_send_errors_total', type: 'counter', labels: { bridge: ANY } },
  { name: 'bridgewatch_announce_suppressed_total', type: 'counter', labels: { reason: ANY } },
  { name: 'bridgewatch_reannounce_latency_seconds', type: 'histogram', labels: { bridge: ANY } },
  { name: 'bridgewatch_mac_conflicts_total', type: 'counter', labels: { bridge: ANY } },
  // the local half of the heal (issue J)
  { name: 'bridgewatch_fdb_repairs_total', type: 'counter', labels: { bridge: ANY } },
  // the source side (issue G)
  { name: 'bridgewatch_fdb_moves_total', type: 'counter', labels: { bridge: ANY, direction: ['to_uplink', 'to_guest'] } },
  { name: 'bridgewatch_mac_flaps_total', type: 'counter', labels: { bridge: ANY } },
  { name: 'bridgewatch_fdb_repair_skipped_total', type: 'counter', labels: { reason: ['static', 'permanent', 'extern_learn', 'sticky', 'dry_run', 'error'] } },
  { name: 'bridgewatch_announce_mode', type: 'gauge', labels: { mode: ANNOUNCE_MODES } },
  // convergence (issue G): per arrival, the fabric delivering to the guest again
  { name: 'bridgewatch_convergence_seconds', type: 'histogram', labels: { bridge: ANY } },
  { name: 'bridgewatch_guests_unconverged', type: 'gauge', labels: { bridge: ANY } },
  { name: 'bridgewatch_guests_awaiting_convergence', type: 'gauge', labels: { bridge: ANY } },
  { name: 'bridgewatch_guest_unconverged', type: 'gauge', labels: { bridge: ANY, port: ANY, mac: ANY }, onlyWhile: 'a guest is unconverged' },
  { name: 'bridgewatch_convergence_unjudged_total', type: 'counter', labels: { bridge: ANY, reason: ['quiet', 'gone', 'not_watched'] } },
  // the guest's own L3 announcements replayed with the heal (issue G, item 3)
  { name: 'bridgewatch_announcements_replayed_total', type: 'counter', labels: { bridge: ANY, kind: ['garp', 'na'] } },
  { name: 'bridgewatch_replay_send_errors_total', type: 'counter', labels: { bridge: ANY } },
  {
    name: 'bridgewatch_announcements_not_kept_total',
    type: 'counter',
    labels: { reason: ['spoofed', 'truncated', 'tagged', 'malformed', 'evicted', 'ring_full', 'rate_limit', 'load_failed'] },
  },
  // which VM (issue H): one info series per identified guest port, and the sources' failures
  { name: 'bridgewatch_guest_info', type: 'gauge', labels: { port: ANY, mac: ANY, vm: ANY, vm_uuid: ANY, vm_namespace: ANY, source: ['libvirt', 'kubevirt', 'file'] } },
  { name: 'bridgewatch_identity_errors_total', type: 'counter', labels: { source: ['libvirt', 'kubevirt', 'file'] } },
];

/**
 * The process's own metrics, from prom-client's collectDefaultMetrics on the daemon's registry
 * (not bridgewatch_-prefixed: the names every Node.js and Go exporter shares).
 */
export const PROCESS_METRICS: readonly ContractMetric[] = [
  { name: 'process_cpu_user_seconds_total', type: 'counter', labels: {} },
  { name: 'process_cpu_system_seconds_total', type: 'counter', labels: {} },
  { name: 'process_cpu_seconds_total', type: 'counter', labels: {} },
  { name: 'process_start_time_seconds', type: 'gauge', labels: {} },
  { name: 'process_resident_memory_bytes', type: 'gauge', labels: {} },
  { name: 'process_virtual_memory_bytes', type: 'gauge', labels: {} },
  { name: 'process_heap_bytes', type: 'gauge', labels: {} },
  { name: 'process_open_fds', type: 'gauge', labels: {} },
  { name: 'process_max_fds', type: 'gauge', labels: {} },
];

/** prom-client's Node.js runtime metrics (heap, event loop, GC): which and with what labels depends on the Node version, so only the prefix is fixed */
export const NODEJS_PREFIX = 'nodejs_';

export interface ContractSeries {
  readonly metric: ContractMetric;
  /** label names a series of this name may carry in Prometheus (target labels included) */
  readonly labelNames: ReadonlySet<string>;
}

/** Series names as Prometheus stores them (histograms as _bucket, _sum, _count) -> their metric. */
export function contractSeries(): ReadonlyMap<string, ContractSeries> {
  const out = new Map<string, ContractSeries>();
  for (const m of [...METRIC_CONTRACT, ...PROCESS_METRICS]) {
    const base = [...Object.keys(m.labels), ...TARGET_LABELS];
    if (m.type === 'histogram') {
      out.set(`${m.name}_bucket`, { metric: m, labelNames: new Set([...base, 'le']) });
      out.set(`${m.name}_sum`, { metric: m, labelNames: new Set(base) });
      out.set(`${m.name}_count`, { metric: m, labelNames: new Set(base) });
    } else {
      out.set(m.name, { metric: m, labelNames: new Set(base) });
    }
  }
  return out;
}

// ---- checking PromQL against the contract -------------------------------------------------

export interface PromqlSelector {
  readonly metric: string;
  /** label names used in the selector's matchers */
  readonly labels: readonly string[];
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'start', 'end']);
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio']);
type Tok = { t: 'id' | 'str' | 'num' | 'op'; v: string };

function tokenize(expr: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i];
    if (/\s/.test(c)) { i++; continue; }
    if (c === '#') { while (i < expr.length && expr[i] !== '\n') i++; continue; }
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < expr.length && expr[j] !== c) j += expr[j] === '\\' && c !== '`' ? 2 : 1;
      if (j >= expr.length) throw new Error(`unterminated string in: ${expr}`);
      out.push({ t: 'str', v: expr.slice(i + 1, j) });
      i = j + 1;
      continue;
    }
    const num = /^(?:0x[0-9a-f]+|\d+(?:\.\d*)?(?:e[+-]?\d+)?(?:ms|[smhdwy])?(?:\d+(?:ms|[smhdwy]))*|\.\d+)/i.exec(expr.slice(i));
    if (num) { out.push({ t: 'num', v: num[0] }); i += num[0].length; continue; }
    const id = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i));
    if (id) { out.push({ t: 'id', v: id[0] }); i += id[0].length; continue; }
    const op = /^(?:=~|!~|!=|==|>=|<=|[{}()[\],=<>+\-*/%^@])/.exec(expr.slice(i));
    if (!op) throw new Error(`unexpected ${JSON.stringify(c)} at ${i} in: ${expr}`);
    out.push({ t: 'op', v: op[0] });
    i += op[0].length;
  }
  return out;
}

/** The series selectors in a PromQL expression: metric names and the label names they match on. */
export function promqlSelectors(expr: string): PromqlSelector[] {
  const toks = tokenize(expr);
  const out: PromqlSelector[] = [];
  for (let i = 0; i < toks.length; i++) {
    const tok = toks[i];
    const next = toks[i + 1];
    if (tok.t !== 'id') continue;
    if (LABEL_LISTS.has(tok.v) && next?.v === '(') {
      while (i < toks.length && toks[i].v !== ')') i++; // a list of label names, not metrics
      continue;
    }
    if (KEYWORDS.has(tok.v.toLowerCase()) || next?.v === '(') continue; // keyword, function
    if (AGGREGATIONS.has(tok.v) && (next?.v === 'by' || next?.v === 'without')) continue; // `sum by (x) (...)`
    const labels: string[] = [];
    if (next?.v === '{') {
      for (i += 2; i < toks.length && toks[i].v !== '}'; i++) {
        if (toks[i].t === 'id' && ['=', '!=', '=~', '!~'].includes(toks[i + 1]?.v ?? '')) labels.push(toks[i].v);
      }
    }
    out.push({ metric: tok.v, labels });
  }
  return out;
}

/**
 * Problems with an expression's metric and label names: each metric must be a contract series
 * (or one of `alsoAllowed`, e.g. Prometheus's `up`), each matcher label one that series has.
 */
export function contractProblems(expr: string, alsoAllowed: readonly string[] = []): string[] {
  const series = contractSeries();
  const problems: string[] = [];
  const selectors = promqlSelectors(expr);
  if (selectors.length === 0) problems.push(`no metric in: ${expr}`);
  for (const s of selectors) {
    if (alsoAllowed.includes(s.metric)) continue;
    const known = series.get(s.metric);
    if (!known) { problems.push(`${s.metric}: not in the metric contract (in: ${expr})`); continue; }
    for (const l of s.labels) {
      if (!known.labelNames.has(l)) problems.push(`${s.metric}: no label ${l} (in: ${expr})`);
    }
  }
  return problems;
}
