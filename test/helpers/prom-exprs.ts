// The PromQL the product ships: every expression of the Grafana dashboard (panel targets,
// annotations, variable queries) and of the alert rules, and Grafana's variables replaced by
// values Prometheus accepts. Shared by the unit test (promtool parses them) and the e2e test
// (a real Prometheus evaluates them against a real daemon).
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promqlSelectors } from './metric-contract.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const repoFile = (p: string): string => join(REPO_ROOT, p);
export const readRepoFile = (p: string): string => readFileSync(repoFile(p), 'utf8');

export type Json = any;

export const DASHBOARD_PATH = 'grafana/bridgewatch.json';
export const ALERTS_PATH = 'grafana/alerts.yml';

export const dashboard: Json = JSON.parse(readRepoFile(DASHBOARD_PATH));

/** every panel, rows' nested panels included */
export function allPanels(panels: Json[] = dashboard.panels): Json[] {
  return panels.flatMap((p: Json) => [p, ...allPanels(p.panels ?? [])]);
}
/** panels that query a datasource */
export const queryPanels: Json[] = allPanels().filter((p) => p.type !== 'row' && p.type !== 'text');
export const variables: Json[] = dashboard.templating.list;
export const variable = (name: string): Json => variables.find((v) => v.name === name);
export const variableQuery = (v: Json): string => v.definition || (typeof v.query === 'string' ? v.query : v.query.query);

export interface Expr {
  where: string;
  expr: string;
}

/** every PromQL expression in the dashboard: panel targets, annotations, variable queries */
export function dashboardExprs(): Expr[] {
  const out: Expr[] = [];
  for (const p of queryPanels) for (const t of p.targets ?? []) out.push({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr });
  for (const a of dashboard.annotations.list) if (a.expr) out.push({ where: `annotation "${a.name}"`, expr: a.expr });
  for (const v of variables.filter((v) => v.type === 'query')) {
    // label_values(selector, label): the selector is PromQL, the label must exist on it
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(variableQuery(v));
    if (!m) throw new Error(`variable ${v.name}: expected label_values(selector, label), got ${variableQuery(v)}`);
    out.push({ where: `variable ${v.name}`, expr: m[1] });
    // and the label it lists must be one that metric has
    out.push({ where: `variable ${v.name} label`, expr: `${promqlSelectors(m[1])[0].metric}{${m[2]}=~".+"}` });
  }
  return out;
}

/** What Grafana would put in for its built-in and dashboard variables. */
export interface GrafanaVars {
  rateInterval: string;
  interval: string;
  range: string;
  /** regexes: `$instance` and `$bridge` are multi-value, inside `=~"..."` */
  instance: string;
  bridge: string;
}

export const DEFAULT_VARS: GrafanaVars = { rateInterval: '5m', interval: '1m', range: '1h', instance: '.*', bridge: '.*' };

/** Grafana's variables replaced by values Prometheus accepts */
export function substitute(expr: string, vars: Partial<GrafanaVars> = {}): string {
  const v = { ...DEFAULT_VARS, ...vars };
  return expr
    .replaceAll('$__rate_interval', v.rateInterval)
    .replaceAll('$__interval', v.interval)
    .replaceAll('$__range', v.range)
    .replace(/\$\{?(instance|bridge)(:\w+)?\}?/g, (_m, name: 'instance' | 'bridge') => v[name]);
}

/** The rules' expressions, without a YAML library: `expr: |` blocks or inline; `where` is the rule's name. */
export function ruleExprs(path: string = ALERTS_PATH): Expr[] {
  const lines = readRepoFile(path).split('\n');
  const out: Expr[] = [];
  let name = '';
  for (let i = 0; i < lines.length; i++) {
    const n = /^\s*- (?:alert|record): (\S+)/.exec(lines[i]);
    if (n) name = n[1];
    const m = /^(\s*)expr: (.*)$/.exec(lines[i]);
    if (!m) continue;
    if (m[2].trim() !== '|') { out.push({ where: name, expr: m[2] }); continue; }
    const body: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1].trim() === '' || lines[i + 1].search(/\S/) > m[1].length)) body.push(lines[++i]);
    out.push({ where: name, expr: body.join('\n').trim() });
  }
  return out;
}

/** The alert names of a rule file, in order. */
export const alertNamesOf = (path: string = ALERTS_PATH): string[] =>
  [...readRepoFile(path).matchAll(/^\s*- alert: (\S+)$/gm)].map((m) => m[1]);
