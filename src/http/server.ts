// The HTTP app as a function that never listens (main.ts listens; tests use inject()).
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { PortView, FactView } from '../tracker/types.js';
import type { AnnounceRequest, AnnounceResult } from '../announce/requests.js';
import { announceBody, announceReply, errorSchema, eventsQuery, eventsSchema, migrationsSchema, portParams, portSchema, portsSchema } from './schemas.js';
import type { MigrationPage } from '../tracker/convergence-view.js';

export type { AnnounceRequest, AnnounceResult };

export interface HttpDeps {
  metrics: { scrape(): Promise<string>; contentType: string };
  ready(): { ok: boolean; reason?: string };
  ports(): PortView[];
  port(name: string): PortView | undefined;
  events(since: number, limit: number): { events: FactView[]; next: number; dropped: number };
  /** guest arrivals and their convergence, cursor-paged like events */
  migrations?(since: number, limit: number): MigrationPage;
  announce?(req: AnnounceRequest): AnnounceResult | Promise<AnnounceResult>;
  apiToken?: string;
  /** pino logger for requests; none when absent (tests) */
  logger?: FastifyBaseLogger;
}

export function buildServer(deps: HttpDeps): FastifyInstance {
  // scrapes every few seconds would drown the log: no per-request lines
  // removeAdditional off: fastify's default silently strips unknown query and body keys, where
  // the schemas' additionalProperties: false means "refuse them" (400)
  const base = {
    bodyLimit: 4096,
    return503OnClosing: true,
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { removeAdditional: false } },
  };
  const app = (deps.logger ? Fastify({ ...base, loggerInstance: deps.logger }) : Fastify({ ...base, logger: false })) as unknown as FastifyInstance;

  // every error is JSON with a message; validation failures are the client's (400)
  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, req, reply) => {
    const status = err.validation ? 400 : err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err }, 'request failed');
    reply.code(status).send({ error: status === 500 ? 'internal error' : err.message, statusCode: status });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}`, statusCode: 404 });
  });

  app.get('/metrics', async (_req, reply) => {
    const text = await deps.metrics.scrape();
    reply.type(deps.metrics.contentType).send(text);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const r = deps.ready();
    if (r.ok) return { status: 'ready' };
    return reply.code(503).send({ status: 'not ready', reason: r.reason ?? 'starting' });
  });

  app.get('/api/v1/ports', { schema: { response: { 200: portsSchema } } }, async () => ({ ports: deps.ports() }));

  app.get<{ Params: { name: string } }>(
    '/api/v1/ports/:name',
    { schema: { params: portParams, response: { 200: portSchema, 404: errorSchema } } },
    async (req, reply) => {
      const p = deps.port(req.params.name);
      if (!p) return reply.code(404).send({ error: `port ${req.params.name} is not watched`, statusCode: 404 });
      return p;
    },
  );

  app.get<{ Querystring: { since: number; limit: number } }>(
    '/api/v1/events',
    { schema: { querystring: eventsQuery, response: { 200: eventsSchema } } },
    async (req, reply) => {
      // ajv coerces "Infinity" (or 400 digits) to Infinity and then skips its range checks
      for (const k of ['since', 'limit'] as const)
        if (!Number.isSafeInteger(req.query[k])) return reply.code(400).send({ error: `querystring/${k} must be a finite integer`, statusCode: 400 });
      return deps.events(req.query.since, req.query.limit);
    },
  );

  app.get<{ Querystring: { since: number; limit: number } }>(
    '/api/v1/migrations',
    { schema: { querystring: eventsQuery, response: { 200: migrationsSchema } } },
    async (req, reply) => {
      for (const k of ['since', 'limit'] as const)
        if (!Number.isSafeInteger(req.query[k])) return reply.code(400).send({ error: `querystring/${k} must be a finite integer`, statusCode: 400 });
      return deps.migrations?.(req.query.since, req.query.limit) ?? { enabled: false, migrations: [], next: req.query.since, dropped: 0 };
    },
  );

  app.post<{ Body: AnnounceRequest }>(
    '/api/v1/announce',
    { schema: { body: announceBody, response: { 202: announceReply, '4xx': errorSchema, '5xx': errorSchema } } },
    async (req, reply) => {
      if (!deps.apiToken || !deps.announce)
        return reply.code(403).send({ error: 'announce API disabled: start bridgewatch with --api-token', statusCode: 403 });
      if (!tokenOk(req.headers.authorization, deps.apiToken))
        return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'missing or wrong bearer token', statusCode: 401 });
      const r = await deps.announce(req.body);
      if (!r.ok) return reply.code(r.status).send({ error: r.error, statusCode: r.status });
      return reply.code(202).send({ port: r.port, macs: r.macs, mode: r.mode, rounds: r.rounds });
    },
  );

  return app;
}

// constant-time comparison of the bearer token (hashing first equalizes the lengths)
function tokenOk(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) return false;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(m[1]), digest(token));
}
